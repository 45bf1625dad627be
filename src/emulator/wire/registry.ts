/**
 * A map of principals with validation on the way in and secret-free summaries on the way out.
 */
import type { PrincipalKind } from '../types.js';
import type { Validated } from '../validate.js';
import type { PrincipalRegistry } from './types.js';

export interface Registry<P> extends PrincipalRegistry {
  get(id: string): P | undefined;
}

export interface RegistrySpec<P> {
  kind: PrincipalKind;
  validate(input: unknown, path: string): Validated<P>;
  id(p: P): string;
  summary(p: P): Record<string, unknown>;
  secrets(p: P): string[];
}

export function createRegistry<P>(spec: RegistrySpec<P>): Registry<P> {
  const byId = new Map<string, P>();
  return {
    kind: spec.kind,
    get: (id) => byId.get(id),
    add(input, path) {
      const result = spec.validate(input, path);
      if (!result.ok) return result;
      const id = spec.id(result.value);
      byId.set(id, result.value);
      return { ok: true, value: id };
    },
    list: () => [...byId.values()].map((p) => spec.summary(p)),
    secrets: () => [...byId.values()].flatMap((p) => spec.secrets(p)),
  };
}
