/**
 * Where a till's request goes: `{apiUrl}/<path>?<query>`, and nowhere else. Pure; every escape is refused with a
 * reason (the server answers 400 with it).
 */

export type TargetResult = { ok: true; url: URL } | { ok: false; message: string };

/** Percent-encodings that would change which resource is named once the API server decodes them. */
const ESCAPING_ENCODINGS = /%(2f|5c|2e|00|0d|0a)/i;
/** Bytes no request target may carry (a parser upstream could split or end the line on them). */
const CONTROL = /[\u0000-\u001f\u007f]/;

/**
 * The URL a path under an account's API names. `rest` is what follows `/v1/proxy/NAME` in the request target
 * (`/receipts?x=1`), or an outbox entry's `path`. Refused: anything but an origin-relative path, `.` and `..`
 * segments (also percent-encoded), encoded slashes and backslashes, control characters, `//` (a scheme-relative
 * URL), and any result that is not under `apiUrl`'s own path.
 */
export function resolveTarget(apiUrl: string, rest: string): TargetResult {
  if (rest !== '' && !rest.startsWith('/') && !rest.startsWith('?')) {
    return { ok: false, message: 'the path must start with "/" (an absolute URL is not forwarded)' };
  }
  if (CONTROL.test(rest)) return { ok: false, message: 'the path holds a control character' };
  const q = rest.indexOf('?');
  const path = q === -1 ? rest : rest.slice(0, q);
  const query = q === -1 ? '' : rest.slice(q);
  if (path.includes('\\')) return { ok: false, message: 'the path holds a backslash' };
  if (path.startsWith('//')) return { ok: false, message: 'the path must not start with "//"' };
  if (ESCAPING_ENCODINGS.test(path)) {
    return { ok: false, message: 'the path holds an encoded slash, backslash, dot or control character, which could leave the API' };
  }
  if (path.split('/').some((segment) => segment === '.' || segment === '..')) {
    return { ok: false, message: 'the path holds a "." or ".." segment, which could leave the API' };
  }
  if (/%(?![0-9a-f]{2})/i.test(rest)) return { ok: false, message: 'the path holds a malformed percent-encoding' };
  let url: URL;
  let base: { origin: string; path: string };
  try {
    base = baseOf(apiUrl);
    url = new URL(`${base.origin}${base.path}${path}${query}`);
  } catch {
    return { ok: false, message: 'the path does not make a valid URL under the API' };
  }
  if (url.origin !== base.origin || (url.pathname !== base.path && !url.pathname.startsWith(`${base.path}/`) && !(base.path === '' && url.pathname === '/'))) {
    return { ok: false, message: 'the path leaves the API' };
  }
  return { ok: true, url };
}

/** An apiUrl's origin and path (no trailing slash), parsed once: every proxied request resolves against it. */
const BASES = new Map<string, { origin: string; path: string }>();
function baseOf(apiUrl: string): { origin: string; path: string } {
  let base = BASES.get(apiUrl);
  if (!base) {
    const u = new URL(apiUrl);
    base = { origin: u.origin, path: u.pathname.replace(/\/+$/, '') };
    if (BASES.size >= 64) BASES.delete(BASES.keys().next().value!);
    BASES.set(apiUrl, base);
  }
  return base;
}

/** Distinct apiUrls, and paths under each, whose resolution createTargetResolver keeps. */
const RESOLVER_API_URLS = 16;
const RESOLVER_PATHS = 64;

/**
 * resolveTarget with its answers kept for the last paths asked under each apiUrl: tills send the same few again and
 * again, and making and checking the URL is much of a proxied request's own work. The URLs answered are shared
 * between requests: nobody changes them.
 */
export function createTargetResolver(): (apiUrl: string, rest: string) => TargetResult {
  const byApi = new Map<string, Map<string, TargetResult>>();
  return (apiUrl, rest) => {
    let kept = byApi.get(apiUrl);
    if (!kept) {
      if (byApi.size >= RESOLVER_API_URLS) byApi.delete(byApi.keys().next().value!);
      byApi.set(apiUrl, (kept = new Map()));
    }
    let result = kept.get(rest);
    if (!result) {
      result = resolveTarget(apiUrl, rest);
      if (kept.size >= RESOLVER_PATHS) kept.delete(kept.keys().next().value!);
      kept.set(rest, result);
    }
    return result;
  };
}
