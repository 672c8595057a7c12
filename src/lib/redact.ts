/**
 * The one redaction of PINs in text the user gave (URIs, labels, paths, values) before any
 * message shows it. A `pin-value` can be mistyped in ways no parser foresees (`&pin-value=`,
 * `;pin-value=`, a PIN with a `&` in it), so everything after one is hidden, to the end of the
 * text; so is everything after a `pin-source` (its path, however it ends).
 */

/** `pin-value` or `pin-source` however written: any case, `-`, `_`, `%2D`, a space or nothing between the words. */
const PIN_ATTRIBUTE = /(pin(?:-|_|%2d| )?(?:value|source))[\s\S]*/i
const MASK = '(redacted)'

/**
 * `text` with PIN values and PIN sources masked.
 *
 * @example
 * redact('pkcs11:token=t&pin-value=1234?module-path=/x.so') // 'pkcs11:token=t&pin-value=(redacted)'
 */
export function redact(text: string): string {
  return text.replace(PIN_ATTRIBUTE, `$1=${MASK}`)
}

/** True when `text` holds something `redact` would mask. */
export function holdsPin(text: string): boolean {
  return PIN_ATTRIBUTE.test(text)
}

/**
 * Masks PINs in an error's message and stack, and in those of its causes: what `util.inspect`
 * shows of an error includes its cause (a module's own error may repeat the path it was given).
 */
export function redactError(error: unknown): void {
  for (let current = error, depth = 0; current instanceof Error && depth < 8; current = current.cause, depth++) {
    const { message, stack } = current
    if (holdsPin(message)) current.message = redact(message)
    // The stack begins with the message; the frames after it are kept.
    if (stack && holdsPin(stack)) current.stack = stack.includes(message) ? stack.replace(message, current.message) : stack.split('\n').map(redact).join('\n')
  }
}
