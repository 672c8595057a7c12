// The fault-injecting PKCS#11 module (test/fault-module/fault-pkcs11.c): building it, and steering
// it from a test. See the comment at the top of the C file for the control protocol.
//
//   const control = new FaultControl()
//   Object.assign(process.env, control.env)         // before the module is first loaded
//   const hsm = await Pkcs11Crypto.open({ library: buildFaultModule(), token: { label }, pin })
//   control.fail('C_Sign', 'CKR_DEVICE_ERROR', { count: 1 })
//   control.latency('C_Sign', 50_000)
//   control.removed(true)
//   control.counts().C_Sign
import { createHash, generateKeyPairSync, verify as nodeVerify } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { appendFileSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { freshSoftHsm, MODULE } from './softhsm.js'

const sourceDir = fileURLToPath(new URL('../fault-module/', import.meta.url))
const SOURCES = ['fault-pkcs11.c', 'pkcs11-min.h']

/** The 68 functions of CK_FUNCTION_LIST in order, then the module's extra counters. */
export const FUNCTIONS = [
  'C_Initialize',
  'C_Finalize',
  'C_GetInfo',
  'C_GetFunctionList',
  'C_GetSlotList',
  'C_GetSlotInfo',
  'C_GetTokenInfo',
  'C_GetMechanismList',
  'C_GetMechanismInfo',
  'C_InitToken',
  'C_InitPIN',
  'C_SetPIN',
  'C_OpenSession',
  'C_CloseSession',
  'C_CloseAllSessions',
  'C_GetSessionInfo',
  'C_GetOperationState',
  'C_SetOperationState',
  'C_Login',
  'C_Logout',
  'C_CreateObject',
  'C_CopyObject',
  'C_DestroyObject',
  'C_GetObjectSize',
  'C_GetAttributeValue',
  'C_SetAttributeValue',
  'C_FindObjectsInit',
  'C_FindObjects',
  'C_FindObjectsFinal',
  'C_EncryptInit',
  'C_Encrypt',
  'C_EncryptUpdate',
  'C_EncryptFinal',
  'C_DecryptInit',
  'C_Decrypt',
  'C_DecryptUpdate',
  'C_DecryptFinal',
  'C_DigestInit',
  'C_Digest',
  'C_DigestUpdate',
  'C_DigestKey',
  'C_DigestFinal',
  'C_SignInit',
  'C_Sign',
  'C_SignUpdate',
  'C_SignFinal',
  'C_SignRecoverInit',
  'C_SignRecover',
  'C_VerifyInit',
  'C_Verify',
  'C_VerifyUpdate',
  'C_VerifyFinal',
  'C_VerifyRecoverInit',
  'C_VerifyRecover',
  'C_DigestEncryptUpdate',
  'C_DecryptDigestUpdate',
  'C_SignEncryptUpdate',
  'C_DecryptVerifyUpdate',
  'C_GenerateKey',
  'C_GenerateKeyPair',
  'C_WrapKey',
  'C_UnwrapKey',
  'C_DeriveKey',
  'C_SeedRandom',
  'C_GenerateRandom',
  'C_GetFunctionStatus',
  'C_CancelFunction',
  'C_WaitForSlotEvent',
]
const EXTRA = ['sessionsOpened', 'sessionsClosed', 'sessionsOpen', 'injected', 'sleepingNow', 'sleepingPeak', 'mainThreadSigns']

/** CKR_ names the helpers accept (numbers are accepted too). */
export const CKR = {
  CKR_OK: 0x00,
  CKR_CANCEL: 0x01,
  CKR_HOST_MEMORY: 0x02,
  CKR_SLOT_ID_INVALID: 0x03,
  CKR_GENERAL_ERROR: 0x05,
  CKR_FUNCTION_FAILED: 0x06,
  CKR_ARGUMENTS_BAD: 0x07,
  CKR_CANT_LOCK: 0x0a,
  CKR_DATA_INVALID: 0x20,
  CKR_DATA_LEN_RANGE: 0x21,
  CKR_DEVICE_ERROR: 0x30,
  CKR_DEVICE_MEMORY: 0x31,
  CKR_DEVICE_REMOVED: 0x32,
  CKR_FUNCTION_CANCELED: 0x50,
  CKR_FUNCTION_NOT_SUPPORTED: 0x54,
  CKR_KEY_HANDLE_INVALID: 0x60,
  CKR_KEY_FUNCTION_NOT_PERMITTED: 0x68,
  CKR_MECHANISM_INVALID: 0x70,
  CKR_OBJECT_HANDLE_INVALID: 0x82,
  CKR_OPERATION_ACTIVE: 0x90,
  CKR_OPERATION_NOT_INITIALIZED: 0x91,
  CKR_PIN_INCORRECT: 0xa0,
  CKR_PIN_INVALID: 0xa1,
  CKR_PIN_EXPIRED: 0xa3,
  CKR_PIN_LOCKED: 0xa4,
  CKR_SESSION_CLOSED: 0xb0,
  CKR_SESSION_COUNT: 0xb1,
  CKR_SESSION_HANDLE_INVALID: 0xb3,
  CKR_SESSION_READ_ONLY: 0xb5,
  CKR_SIGNATURE_INVALID: 0xc0,
  CKR_SIGNATURE_LEN_RANGE: 0xc1,
  CKR_TOKEN_NOT_PRESENT: 0xe0,
  CKR_TOKEN_NOT_RECOGNIZED: 0xe1,
  CKR_USER_ALREADY_LOGGED_IN: 0x100,
  CKR_USER_NOT_LOGGED_IN: 0x101,
  CKR_USER_PIN_NOT_INITIALIZED: 0x102,
  CKR_BUFFER_TOO_SMALL: 0x150,
  CKR_CRYPTOKI_NOT_INITIALIZED: 0x190,
  CKR_CRYPTOKI_ALREADY_INITIALIZED: 0x191,
  CKR_FUNCTION_REJECTED: 0x200,
}

/**
 * Compiles the fault module once per source version (into os.tmpdir(), keyed by a hash of the
 * sources) and returns the path of the shared object.
 */
export function buildFaultModule() {
  const hash = createHash('sha256')
  for (const file of SOURCES) hash.update(file).update(readFileSync(join(sourceDir, file)))
  const dir = join(tmpdir(), `pkcs11-fault-${hash.digest('hex').slice(0, 16)}`)
  const target = join(dir, 'faultpkcs11.so')
  if (existsSync(target)) return target
  mkdirSync(dir, { recursive: true })
  // Build beside the target and rename: test files running in parallel never load half a file.
  const partial = join(dir, `faultpkcs11.${process.pid}.so`)
  execFileSync(process.env.CC || 'cc', ['-std=c99', '-shared', '-fPIC', '-O2', '-o', partial, join(sourceDir, 'fault-pkcs11.c'), '-ldl', '-lpthread'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  renameSync(partial, target)
  return target
}

function functionName(fn) {
  if (fn !== '*' && !FUNCTIONS.includes(fn)) throw new TypeError(`not a PKCS#11 function: ${fn}`)
  return fn
}

function ckrCode(code) {
  if (typeof code === 'number' && Number.isInteger(code) && code >= 0) return `0x${code.toString(16)}`
  if (typeof code === 'string' && code in CKR) return `0x${CKR[code].toString(16)}`
  throw new TypeError(`unknown CKR_ code: ${code}`)
}

/**
 * Steers the fault module of this process. The module reads its environment once, when it is first
 * loaded: merge `env` into process.env before that (one FaultControl per process).
 */
export class FaultControl {
  readonly dir: string
  readonly controlPath: string
  readonly countsPath: string
  /** To merge into process.env before the module is first loaded. */
  readonly env: { FAULT_PKCS11_MODULE: string; FAULT_PKCS11_CONTROL: string; FAULT_PKCS11_COUNTS: string }

  /** @param dir a folder for the control and counts files (default: a new temp folder) */
  constructor(dir?: string, { module = MODULE } = {}) {
    if (!dir) {
      dir = mkdtempSync(join(tmpdir(), 'p11fault-'))
      process.on('exit', () => rmSync(dir, { recursive: true, force: true }))
    }
    this.dir = dir
    this.controlPath = join(dir, 'control')
    this.countsPath = join(dir, 'counts')
    rmSync(this.countsPath, { force: true })
    writeFileSync(this.controlPath, '')
    this.env = {
      FAULT_PKCS11_MODULE: module,
      FAULT_PKCS11_CONTROL: this.controlPath,
      FAULT_PKCS11_COUNTS: this.countsPath,
    }
  }

  /** Appends one raw control line; it applies on the module's next call. */
  command(line) {
    if (/[\r\n]/.test(line)) throw new TypeError('one line only')
    appendFileSync(this.controlPath, `${line}\n`)
    return this
  }

  /** Adds `micros` microseconds to every call of `fn` ('*': all functions); 0 removes it. */
  latency(fn, micros) {
    if (!Number.isInteger(micros) || micros < 0) throw new TypeError('micros: a whole number >= 0')
    return this.command(`latency ${functionName(fn)} ${micros}`)
  }

  /**
   * Makes `fn` answer `code` (a CKR_ name or number): { count: N } the next N calls (default 1),
   * { rate: K } every K-th call, { always: true } until cleared; { skip: M } lets M calls pass first.
   */
  // @ts-expect-error TS2339 (converted from JavaScript): Property 'count' does not exist on type '{}'.
  fail(fn, code, { count, rate, always, skip } = {}) {
    let line = `fail ${functionName(fn)} ${ckrCode(code)}`
    if ([count, rate, always].filter((x) => x !== undefined && x !== false).length > 1) throw new TypeError('one of count, rate, always')
    if (always) line += ' always'
    else if (rate !== undefined) line += ` rate ${positive(rate, 'rate')}`
    else if (count !== undefined) line += ` count ${positive(count, 'count')}`
    if (skip !== undefined) line += ` skip ${positive(skip, 'skip', 0)}`
    return this.command(line)
  }

  /** Drops the latency and fail rule of `fn` (default: of every function). */
  clear(fn) {
    return this.command(fn === undefined ? 'clear' : `clear ${functionName(fn)}`)
  }

  /** Removes (true) or re-inserts (false) the token. */
  removed(value) {
    return this.command(`removed ${value ? 1 : 0}`)
  }

  /** Clears every latency and fail rule and re-inserts the token; counts are kept. */
  reset() {
    return this.command('reset')
  }

  /** Sets the counts to 0 now (sessionsOpen and sleepingNow are kept), writing the shared counts file in place. */
  zero() {
    if (!existsSync(this.countsPath)) return this
    const fd = openSync(this.countsPath, 'r+')
    try {
      const names = [...FUNCTIONS, ...EXTRA]
      for (let i = 0; i < names.length; i++) {
        if (names[i] !== 'sessionsOpen' && names[i] !== 'sleepingNow') writeSync(fd, Buffer.alloc(8), 0, 8, 24 + 8 * i)
      }
    } finally {
      closeSync(fd)
    }
    return this
  }

  /**
   * Call counts as the module sees them now: { C_Sign: n, ... (all 68), sessionsOpened,
   * sessionsClosed, sessionsOpen, injected, sleepingNow, sleepingPeak (most calls asleep in
   * their latency at once), mainThreadSigns (C_Sign calls on the process's main thread) }. All 0
   * before the module's first call.
   */
  countsSync() {
    const result = Object.fromEntries([...FUNCTIONS, ...EXTRA].map((name) => [name, 0]))
    if (!existsSync(this.countsPath)) return result
    const buffer = readFileSync(this.countsPath)
    if (buffer.length < 24 || buffer.toString('latin1', 0, 8) !== 'P11FAULT') return result
    const n = Number(buffer.readBigUInt64LE(16))
    const names = [...FUNCTIONS, ...EXTRA]
    for (let i = 0; i < Math.min(n, names.length) && 24 + 8 * i + 8 <= buffer.length; i++) {
      result[names[i]] = Number(buffer.readBigInt64LE(24 + 8 * i))
    }
    return result
  }

  /** As countsSync (the counts file is always current). */
  async counts() {
    return this.countsSync()
  }
}

function positive(value, name, min = 1) {
  if (!Number.isInteger(value) || value < min) throw new TypeError(`${name}: a whole number >= ${min}`)
  return value
}

/** The signing input the fault-module tests sign (a JWT's header and payload). */
export const JWT_INPUT = new TextEncoder().encode('eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9')

/**
 * A fresh SoftHSM token `label` holding a P-256 key labelled 'p256' (CKA_ID `id`), and the fault
 * module over it, steered by `control` (its environment set before the module is first loaded).
 * `verifies(signature)` checks an ECDSA P-256 signature (IEEE P1363) of `data` with Node.
 */
export function faultP256Token(label: string, { pin, id }: { pin?: string; id: string }) {
  const softhsm = freshSoftHsm()
  softhsm.initToken(label, pin)
  const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  softhsm.importKey(label, pair.privateKey.export({ format: 'pem', type: 'pkcs8' }), { label: 'p256', id }, pin)
  const control = new FaultControl()
  Object.assign(process.env, control.env)
  const verifies = (signature: ArrayBuffer | Uint8Array) =>
    nodeVerify('sha256', JWT_INPUT, { key: pair.publicKey, dsaEncoding: 'ieee-p1363' }, Buffer.from(signature as ArrayBuffer))
  return { softhsm, control, faultModule: buildFaultModule(), verifies }
}
