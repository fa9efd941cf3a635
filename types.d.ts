/// <reference types="node" />
declare module "*.peer" {
  const text: string;
  export default text;
}
