import { defineConfig } from 'vitest/config';

// .peer files are imported as text, as esbuild's text loader does for the CLI bundle.
export default defineConfig({
  plugins: [
    {
      name: 'peer-as-text',
      transform(code: string, id: string) {
        if (id.endsWith('.peer')) return { code: `export default ${JSON.stringify(code)};`, map: null };
        return undefined;
      },
    },
  ],
  test: { include: process.env.PEERC_SCRATCH ? ['scratch/**/*.test.ts'] : ['test/**/*.test.ts'], testTimeout: 600_000, hookTimeout: 600_000, pool: 'forks' },
});
