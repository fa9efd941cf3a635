// The version the CLI reports and writes into what it generates.
export const PEERC_VERSION = '0.1.0';
