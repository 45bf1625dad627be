/**
 * The rules every request passes before any route sees it: nothing a browser or a forwarding proxy sends
 * (Origin, Forwarded, X-Forwarded-For: 403), and the agent's own header (`X-Pos-Agent: 1`, else 412).
 */
import type { IncomingMessage } from 'node:http';
import { AGENT_HEADER, AGENT_HEADER_VALUE } from '../api/index.js';
import { HttpError } from './http.js';

/** The 403 or 412 `req` gets, or undefined when it may go on (nothing is allocated then: the hot path asks too). */
export function refusal(req: IncomingMessage): HttpError | undefined {
  const h = req.headers;
  // Each header by name, not in a loop over the names: a load by a varying key is a slow (megamorphic) one.
  if (h.origin !== undefined || h.forwarded !== undefined || h['x-forwarded-for'] !== undefined) {
    return new HttpError(403, { error: 'forbidden', message: 'requests carrying Origin, Forwarded or X-Forwarded-For are refused' });
  }
  if (h[AGENT_HEADER] !== AGENT_HEADER_VALUE) {
    return new HttpError(412, { error: 'precondition_failed', message: 'every request must carry the header X-Pos-Agent: 1' });
  }
  return undefined;
}
