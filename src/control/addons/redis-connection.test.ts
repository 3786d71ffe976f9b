// RESP2 replies parsed whole or not at all, and INFO sections read as fields.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseInfo, parseReply, RedisReplyError } from './redis-connection.js';

describe('parseReply', () => {
  it('reads each kind of reply and where it ends', () => {
    const cases: [string, unknown][] = [
      ['+PONG\r\n', 'PONG'],
      [':42\r\n', 42],
      ['$5\r\nhello\r\n', 'hello'],
      ['$0\r\n\r\n', ''],
      ['$-1\r\n', null],
      ['*2\r\n$1\r\na\r\n:7\r\n', ['a', 7]],
      ['*-1\r\n', null],
      ['*1\r\n-ERR inner\r\n', ['ERR inner']],
    ];
    for (const [text, value] of cases) {
      const parsed = parseReply(Buffer.from(`${text}+NEXT\r\n`), 0);
      assert.deepEqual(parsed?.value, value, JSON.stringify(text));
      assert.equal(parsed?.end, Buffer.byteLength(text), JSON.stringify(text));
    }
  });

  it('returns an error reply as RedisReplyError', () => {
    const parsed = parseReply(Buffer.from('-WRONGPASS invalid username-password pair\r\n'), 0);
    assert.ok(parsed?.value instanceof RedisReplyError);
    assert.equal(parsed.value.message, 'WRONGPASS invalid username-password pair');
  });

  it('waits for the rest of a reply split anywhere, bulk bytes counted in bytes', () => {
    const whole = Buffer.from('*2\r\n$6\r\nnaïve\r\n:1\r\n');
    for (let cut = 0; cut < whole.length; cut++)
      assert.equal(parseReply(whole.subarray(0, cut), 0), undefined);
    assert.deepEqual(parseReply(whole, 0)?.value, ['naïve', 1]);
  });
});

describe('parseInfo', () => {
  it('reads fields and skips section headers', () => {
    assert.deepEqual(parseInfo('# Persistence\r\nrdb_saves:3\r\nrdb_last_bgsave_status:ok\r\n\r\n'), {
      rdb_saves: '3',
      rdb_last_bgsave_status: 'ok',
    });
  });
});
