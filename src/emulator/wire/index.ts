/**
 * The wire formats by authority. Each module speaks one service's token endpoints behind the common
 * `WireSpec`; the server in ../emulator.ts shares the HTTP, faults, stats, signing and rate limiting.
 */
import type { EmulatorAuthority } from '../types.js';
import { etaEinvoicing } from './eta-einvoicing.js';
import { etaEreceipt } from './eta-ereceipt.js';
import { impactGr } from './impact-gr.js';
import { myinvois } from './myinvois.js';
import { oauth2 } from './oauth2.js';
import { sepay } from './sepay.js';
import type { WireSpec } from './types.js';

export const WIRES: Readonly<Record<EmulatorAuthority, WireSpec>> = Object.freeze({
  'eta-ereceipt': etaEreceipt,
  'eta-einvoicing': etaEinvoicing,
  myinvois,
  'impact-gr': impactGr,
  sepay,
  oauth2,
});

export type { Wire, WireContext, WireSpec } from './types.js';
