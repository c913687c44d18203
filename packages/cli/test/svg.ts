/** A small well-formedness check for the SVG we write: balanced tags, quoted attributes, known entities. */
export function checkWellFormedXml(xml: string): string[] {
  const problems: string[] = [];
  const stack: string[] = [];
  const re = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>|<!--[\s\S]*?-->|<\?[\s\S]*?\?>/g;
  let last = 0;
  let m: RegExpExecArray | null;
  let root = 0;
  while ((m = re.exec(xml))) {
    const between = xml.slice(last, m.index);
    if (between.includes("<") || between.includes(">")) problems.push(`stray < or > near offset ${last}: ${JSON.stringify(between.slice(0, 40))}`);
    for (const ent of between.match(/&[^;\s]*;?/g) ?? []) {
      if (!/^&(amp|lt|gt|quot|#39|#\d+);$/.test(ent)) problems.push(`bad entity ${ent}`);
    }
    last = re.lastIndex;
    if (m[0].startsWith("<!--") || m[0].startsWith("<?")) continue;
    const [, close, name, , selfClose] = m;
    if (close) {
      const open = stack.pop();
      if (open !== name) problems.push(`</${name}> closes <${open}>`);
    } else if (!selfClose) {
      if (stack.length === 0) root++;
      stack.push(name);
    } else if (stack.length === 0) root++;
  }
  if (xml.slice(last).trim()) problems.push(`text after the root: ${JSON.stringify(xml.slice(last, last + 40))}`);
  if (stack.length) problems.push(`unclosed: ${stack.join(", ")}`);
  if (root !== 1) problems.push(`${root} root elements`);
  return problems;
}

/** The numeric pairs of every polyline of a series. */
export function polylinePoints(svg: string, series: string): [number, number][][] {
  const out: [number, number][][] = [];
  const re = new RegExp(`<polyline data-series="${series}"[^>]* points="([^"]*)"`, "g");
  for (const m of svg.matchAll(re)) out.push(m[1].split(" ").map((p) => p.split(",").map(Number) as [number, number]));
  return out;
}
