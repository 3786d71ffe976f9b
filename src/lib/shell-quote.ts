// Quoting for /bin/sh: a word that reaches the command exactly as given, whatever it holds.

/** `text` as one single-quoted shell word (`'` written as `'\''`). */
export function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/** An argv as one shell command line. */
export function shellCommand(argv: readonly string[]): string {
  return argv.map(shellQuote).join(' ');
}
