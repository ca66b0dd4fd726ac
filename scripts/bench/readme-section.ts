/**
 * Puts a benchmark report into README.md between `<!-- bench:begin -->` and `<!-- bench:end -->`.
 *
 * Contract: pure string work. The report's headings move one level down (it sits under the
 * README's "## Performance"), and image links relative to the report's directory are made
 * relative to the README. A README without both markers, in order, is an error, never a guess.
 */
export const BENCH_BEGIN = '<!-- bench:begin -->';
export const BENCH_END = '<!-- bench:end -->';

export function spliceBenchSection(readme: string, reportMarkdown: string, reportDirFromReadme: string): string {
  const begin = readme.indexOf(BENCH_BEGIN);
  const end = readme.indexOf(BENCH_END);
  if (begin < 0 || end < begin) {
    throw new Error(`README.md lacks the ${BENCH_BEGIN} … ${BENCH_END} markers`);
  }
  const body = reportMarkdown
    .trim()
    .split('\n')
    .map((line) => (/^#{1,5} /.test(line) ? `#${line}` : line))
    .join('\n')
    .replace(/\]\((?![a-z]+:|\/|#)([^)]+)\)/g, (_m, target: string) => `](${reportDirFromReadme}/${target})`);
  return `${readme.slice(0, begin + BENCH_BEGIN.length)}\n${body}\n${readme.slice(end)}`;
}
