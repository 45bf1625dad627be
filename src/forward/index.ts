/**
 * Forwarding a till's request to its account's API with the token injected: target resolution (path.ts), the
 * headers that may cross (headers.ts) and the sender with its one forced login on a 401 (sender.ts).
 */
export { createTargetResolver, resolveTarget, type TargetResult } from './path.js';
export { isForwardableHeader, REFUSED_REQUEST_HEADERS, refusedHeader, requestHeadersOut, responseHeadersBack } from './headers.js';
export {
  createForwarder,
  forwardAccountOf,
  FORWARD_MIN_TTL_S,
  type ForwardAccount,
  type ForwardFailure,
  type Forwarder,
  type ForwarderDeps,
  type ForwardRequest,
  type ForwardResult,
  type ForwardTokenSource,
} from './sender.js';
