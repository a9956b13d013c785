/**
 * A document in the DeepMind Mathematics format (question line, answer line) of `questions` arithmetic questions
 * drawn from `random`: the samples' stand-in for the Pile's DM Mathematics set.
 */
export function mathDocument(random: () => number, questions: number): string {
  const int = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo + 1));
  const lines = [];
  for (let i = 0; i < questions; i++) {
    const kind = int(0, 3);
    const a = int(2, 99);
    const b = int(2, 99);
    const x = int(-20, 20);
    if (kind === 0) lines.push(`What is ${a} + ${b}?`, String(a + b));
    else if (kind === 1) lines.push(`Calculate ${a}*${b}.`, String(a * b));
    else if (kind === 2) lines.push(`Solve ${a}*x + ${b} = ${a * x + b} for x.`, String(x));
    else lines.push(`What is the remainder when ${a * b + (b % a)} is divided by ${a}?`, String((a * b + (b % a)) % a));
  }
  return `${lines.join('\n')}\n`;
}
