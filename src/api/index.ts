/**
 * The socket API, typed once: the wire (what the agent writes and reads) and the one client of it.
 * A leaf: it imports nothing of the agent, so the server, the CLI, doctor and provisioning can all use it.
 */
export {
  ACCOUNT_NAME,
  ACCOUNT_NAME_RULE,
  AGENT_HEADER,
  AGENT_HEADER_VALUE,
  DEFAULT_ACCOUNT,
  DEFAULT_MIN_TTL_S,
  isAccountName,
  isUsableState,
  MAX_MIN_TTL_S,
  MIN_TTL_RULE,
  parseMinTtl,
  type AccountStatusBody,
  type ErrorBody,
  type ErrorCode,
  type HealthBody,
  type IdentityFieldName,
  type IdentityStatusBody,
  type LastErrorBody,
  type ProtocolErrorCode,
  type RefreshRequestBody,
  type StatusBody,
  type TokenBody,
  type TokenState,
  type UnavailableReason,
} from './wire.js';
export {
  AgentClientError,
  connectionError,
  createAgentClient,
  DEFAULT_TIMEOUT_MS,
  type AgentClient,
  type AgentClientErrorCode,
  type AgentClientOptions,
  type RefreshQuery,
  type TokenQuery,
  type TokenResult,
} from './client.js';
