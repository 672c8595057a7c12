// The DER the library writes and reads itself: CKA_EC_POINT's OCTET STRING, CKA_EC_PARAMS's curve.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { CURVES, curveNamed, curveOfParams, unwrapPoint, wrapPoint, type Curve } from '../../src/keys/curves.js'

function curve(name: string): Curve {
  const found = curveNamed(name)
  assert.ok(found, name)
  return found
}

test('CKA_EC_POINT: an OCTET STRING around the point, short and long length forms', () => {
  const p256 = Buffer.concat([Buffer.from([4]), Buffer.alloc(64, 1)])
  assert.deepEqual(wrapPoint(p256), Buffer.concat([Buffer.from([0x04, 65]), p256]))
  const p521 = Buffer.concat([Buffer.from([4]), Buffer.alloc(132, 2)])
  assert.deepEqual(wrapPoint(p521), Buffer.concat([Buffer.from([0x04, 0x81, 133]), p521]))
  assert.deepEqual(unwrapPoint(wrapPoint(p256), curve('P-256')), p256)
  assert.deepEqual(unwrapPoint(wrapPoint(p521), curve('P-521')), p521)
})

test('CKA_EC_POINT without its wrapping (some modules) is read as it is; garbage is refused', () => {
  const ed = Buffer.alloc(32, 4) // starts with 0x04 like an OCTET STRING: the length decides
  assert.deepEqual(unwrapPoint(ed, curve('Ed25519')), ed)
  assert.deepEqual(unwrapPoint(wrapPoint(ed), curve('Ed25519')), ed)
  assert.throws(() => unwrapPoint(Buffer.from([1, 2, 3]), curve('P-256')), /neither a point nor an OCTET STRING/)
})

test('CKA_EC_PARAMS: each curve by its OID, Ed25519 also by the PrintableStrings OpenSC writes', () => {
  for (const c of CURVES) assert.equal(curveOfParams(c.params), c)
  assert.equal(curveOfParams(Buffer.from('130c656477617264733235353139', 'hex'))?.name, 'Ed25519')
  assert.equal(curveOfParams(Buffer.from('130745643235353139', 'hex'))?.name, 'Ed25519')
  assert.equal(curveOfParams(Buffer.from('06052b8104000a', 'hex')), undefined) // secp256k1: not served
  assert.equal(curveOfParams(undefined), undefined)
})
