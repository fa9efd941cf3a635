/// <reference types="node" />
declare module "*.peer" {
  const text: string;
  export default text;
}
declare module "virtual:peer-examples" {
  /** The examples/ folder at build time: name (without .peer) -> source text. */
  const examples: Record<string, string>;
  export default examples;
}
