import assert from 'node:assert/strict'
import { HttpError } from '../../../node/api/errors.js'
import { bad, bodyOf } from '../../../node/api/route-helpers.js'
import type { ApiRequest } from '../../../node/api/router.js'

const req = (body: unknown): ApiRequest => ({ method: 'POST', path: '/v1/x', params: {}, query: new URLSearchParams(), body })

describe('api: route helpers', function () {
  it('bad is a 400 API_BAD_REQUEST naming the field', () => {
    const err = bad('price', 'must be a decimal string')
    assert.ok(err instanceof HttpError)
    assert.equal(err.status, 400)
    assert.equal(err.code, 'API_BAD_REQUEST')
    assert.equal(err.message, 'price must be a decimal string')
    assert.deepEqual(err.details, { field: 'price' })
  })

  it('bodyOf returns a JSON object body and refuses anything else with field body', () => {
    const b = { amount: '3' }
    assert.equal(bodyOf(req(b)), b)
    for (const body of [undefined, null, [], 'text', 3]) {
      assert.throws(() => bodyOf(req(body)), (err: unknown) => err instanceof HttpError && err.status === 400 && err.code === 'API_BAD_REQUEST' && err.details?.field === 'body', String(body))
    }
  })
})
