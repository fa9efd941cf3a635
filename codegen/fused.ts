export const FUSED_RENDERERS: Record<string, (r: import('./naive.js').RenderInput) => import('./naive.js').Rendered> = {};
