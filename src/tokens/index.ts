export {
  createTokenManager,
  type AccountStatus,
  type ServedToken,
  type TokenAnswer,
  type TokenError,
  type TokenManager,
  type TokenManagerDeps,
  type TokenState,
  type UnavailableReason,
} from './manager.js';
export type { TokenStore } from './token-store.js';
export { refreshDelayMs, retryDelayMs, REFRESH_FRACTION, REFRESH_JITTER } from './policy.js';
export {
  configIdentityProvider,
  IDENTITY_FIELDS,
  type IdentityField,
  type IdentityProvider,
  type IdentityReading,
  type IdentityStatus,
  type IdentityValue,
} from './identity-tracker.js';
export { createLoginLimiter, type LoginLimiter } from './login-limiter.js';
