import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { BLOCK_SIZE } from '../../../src/ebs/constants.js';
import { blockIndexOf, blockPieces, blockSpan, readableLength } from '../../../src/fs/block-math.js';
import { prng, randomInt } from '../store/fixtures.js';

const SIZE = 4 * BLOCK_SIZE; // a small volume: 4 blocks

/** Byte model: for each byte of the range, which block and offset it comes from. */
function checkPieces(position: number, length: number): void {
  const pieces = blockPieces(position, length);
  assert.equal(pieces.reduce((n, p) => n + p.length, 0), length, 'lengths sum to the range');
  let expectedBufferOffset = 0;
  for (const [k, p] of pieces.entries()) {
    assert.equal(p.bufferOffset, expectedBufferOffset, 'contiguous buffer offsets');
    assert.ok(p.length >= 1 && p.offsetInBlock + p.length <= BLOCK_SIZE, 'piece inside its block');
    const firstByte = position + p.bufferOffset;
    assert.equal(p.index * BLOCK_SIZE + p.offsetInBlock, firstByte, 'piece maps to the right bytes');
    if (k > 0) {
      assert.equal(p.index, pieces[k - 1]!.index + 1, 'ascending consecutive blocks');
      assert.equal(p.offsetInBlock, 0, 'later pieces start at block start');
    }
    expectedBufferOffset += p.length;
  }
  const span = blockSpan(position, length);
  assert.equal(span.first, pieces[0]!.index);
  assert.equal(span.last, pieces[pieces.length - 1]!.index);
}

describe('block math', () => {
  test('blockIndexOf at boundaries', () => {
    assert.equal(blockIndexOf(0), 0);
    assert.equal(blockIndexOf(BLOCK_SIZE - 1), 0);
    assert.equal(blockIndexOf(BLOCK_SIZE), 1);
    assert.equal(blockIndexOf(65_536 * 1024 ** 3 - 1), 134_217_727);
  });

  test('readableLength clamps at the end of the volume', () => {
    assert.equal(readableLength(0, 100, SIZE), 100);
    assert.equal(readableLength(SIZE - 10, 100, SIZE), 10);
    assert.equal(readableLength(SIZE, 100, SIZE), 0);
    assert.equal(readableLength(SIZE + 5, 100, SIZE), 0);
    assert.equal(readableLength(5, 0, SIZE), 0);
    assert.equal(readableLength(-1, 10, SIZE), 0);
  });

  test('boundary cases split correctly', () => {
    const cases: [number, number][] = [
      [0, 1], [0, BLOCK_SIZE], [0, BLOCK_SIZE + 1], [BLOCK_SIZE - 1, 2], [BLOCK_SIZE - 1, 1],
      [BLOCK_SIZE, BLOCK_SIZE], [SIZE - 1, 1], [SIZE - BLOCK_SIZE, BLOCK_SIZE], [1, SIZE - 2], [0, SIZE],
      [BLOCK_SIZE - 131_072, 131_072], [BLOCK_SIZE - 65_536, 131_072],
    ];
    for (const [p, l] of cases) checkPieces(p, l);
    assert.deepEqual(blockPieces(BLOCK_SIZE - 1, 2), [
      { index: 0, offsetInBlock: BLOCK_SIZE - 1, length: 1, bufferOffset: 0 },
      { index: 1, offsetInBlock: 0, length: 1, bufferOffset: 1 },
    ]);
    assert.equal(blockPieces(0, SIZE).length, 4);
    assert.equal(blockPieces(1, SIZE - 1).length, 4);
    assert.equal(blockPieces(BLOCK_SIZE - 1, BLOCK_SIZE + 2).length, 3);
  });

  test('random offsets and lengths against a byte model', () => {
    const rand = prng(42);
    for (let i = 0; i < 5_000; i++) {
      const position = randomInt(rand, SIZE + BLOCK_SIZE);
      const length = 1 + randomInt(rand, rand() < 0.5 ? 131_072 : 3 * BLOCK_SIZE);
      const n = readableLength(position, length, SIZE);
      assert.equal(n, Math.max(0, Math.min(position + length, SIZE) - position));
      if (n > 0) checkPieces(position, n);
    }
  });

  test('large volume offsets stay exact', () => {
    const volume = 16_384 * 1024 ** 3; // 16 TiB
    const position = volume - BLOCK_SIZE - 100;
    const pieces = blockPieces(position, 200);
    assert.deepEqual(pieces.map((p) => p.index), [volume / BLOCK_SIZE - 2, volume / BLOCK_SIZE - 1]);
    assert.equal(pieces[0]!.offsetInBlock, BLOCK_SIZE - 100);
    assert.equal(readableLength(volume - 1, 10, volume), 1);
  });
});
