-- Neovim's built-in LSP client against `peerc lsp` (test/editors.test.ts): open a .peer file
-- with an error, wait for the diagnostic, ask for hover and definition, format the buffer and
-- save it; the results go to PEERC_OUT as JSON. Works with Neovim 0.7 (start_client) and later.
local file, cli, out = os.getenv('PEERC_FILE'), os.getenv('PEERC_CLI'), os.getenv('PEERC_OUT')
local hover_at = { tonumber(os.getenv('PEERC_HOVER_LINE')), tonumber(os.getenv('PEERC_HOVER_COL')) }
local result = {}
local ok, err = pcall(function()
  vim.cmd('edit ' .. file)
  vim.bo.filetype = 'peer'
  local id = vim.lsp.start_client({ name = 'peerc', cmd = { 'node', cli, 'lsp', '--stdio' }, root_dir = vim.fn.fnamemodify(file, ':h') })
  vim.lsp.buf_attach_client(0, id)
  vim.wait(30000, function() return #vim.diagnostic.get(0) > 0 end, 50)
  result.diagnostics = {}
  for _, d in ipairs(vim.diagnostic.get(0)) do
    table.insert(result.diagnostics, { line = d.lnum, col = d.col, code = d.code, message = d.message, severity = d.severity })
  end
  local client = vim.lsp.get_client_by_id(id)
  local params = { textDocument = { uri = vim.uri_from_bufnr(0) }, position = { line = hover_at[1], character = hover_at[2] } }
  local hover = client.request_sync('textDocument/hover', params, 20000, 0)
  result.hover = hover and hover.result and hover.result.contents.value or vim.NIL
  local def = client.request_sync('textDocument/definition', params, 20000, 0)
  result.definition = def and def.result or vim.NIL
  local fmt = client.request_sync('textDocument/formatting', { textDocument = params.textDocument, options = { tabSize = 2, insertSpaces = true } }, 20000, 0)
  if fmt and fmt.result then vim.lsp.util.apply_text_edits(fmt.result, 0, 'utf-16') end
  vim.cmd('write')
  client.stop()
end)
result.ok = ok
result.error = ok and vim.NIL or tostring(err)
local f = io.open(out, 'w')
f:write(vim.fn.json_encode(result))
f:close()
vim.cmd('qa!')
