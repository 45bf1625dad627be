export {
  createTokenManager,
  type AccountStatus,
  type ServedToken,
  type TokenAnswer,
  type TokenError,
  type TokenManager,
  type TokenManagerDeps,
  type TokenState,
  type TokenStore,
  type UnavailableReason,
} from './manager.js';
export { refreshDelayMs, retryDelayMs, REFRESH_FRACTION, REFRESH_JITTER } from './policy.js';
