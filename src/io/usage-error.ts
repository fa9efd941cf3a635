/** A mistake in how peerc was invoked (exit status 2). Its own module: browser code throws it too. */
export class UsageError extends Error {}
