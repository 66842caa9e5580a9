// docs/examples/kv-double-buffer.test.ts: the model as a CI test, next to the code it describes.
import { describe, expect, it } from 'vitest';
import { variantOf } from 'interleave/vitest';
import kv from './kv-double-buffer.ts';

describe('double-buffered KV transfer, prefill to decode', () => {
  it('the fix holds: a staging buffer is reused only after its send is waited', () => {
    expect(variantOf(kv, 'reuse-after-wait')).toHold();
  });

  it('it still holds for a prompt of 8 chunks', () => {
    expect(variantOf(kv, 'reuse-after-wait', 'pr')).toHold();
  });

  it('the checker still catches the bug it was written for', () => {
    expect(variantOf(kv, 'reuse-on-post')).toViolate('kvIntact');
  });

  it('every variant gets the verdict it declares', () => {
    expect(kv).toMeetExpectations();
  });
});
