import { describe, expect, test } from "../../../test/support/harness.ts";
import { colorScale, downsample, escapeXml, heatmap, linePlot, logTicks, niceTicks, tickLabel, type Point } from "../src/plot.ts";
import { checkWellFormedXml, polylinePoints } from "./svg.ts";

describe("plot: line plot", () => {
  const loss: Point[] = Array.from({ length: 50 }, (_, i) => [i + 1, 3 * Math.exp(-i / 15) + 0.5]);
  const val: Point[] = [[10, 2.5], [20, 1.6], [30, 1.2], [40, 1.0], [50, 0.9]];
  const svg = linePlot([{ name: "train", points: loss }, { name: "validation <bytes>", points: val, dashed: true }], {
    title: "loss & co", xLabel: "step", yLabel: "loss (nats)",
  });

  test("is a well-formed SVG document", () => {
    expect(svg.startsWith("<svg xmlns=\"http://www.w3.org/2000/svg\"")).toBe(true);
    expect(checkWellFormedXml(svg)).toEqual([]);
  });

  test("contains every point, mapped monotonically into the plot area", () => {
    const [train] = polylinePoints(svg, "train");
    expect(train).toHaveLength(50);
    for (let i = 1; i < train.length; i++) {
      expect(train[i][0]).toBeGreaterThan(train[i - 1][0]); // x increases with step
      expect(train[i][1]).toBeGreaterThan(train[i - 1][1]); // loss falls, so y (downwards) grows
    }
    for (const [x, y] of train) {
      expect(x).toBeGreaterThanOrEqual(72);
      expect(x).toBeLessThanOrEqual(720 - 20);
      expect(y).toBeGreaterThanOrEqual(0);
      expect(y).toBeLessThanOrEqual(420 - 56);
    }
    expect(polylinePoints(svg, "validation &lt;bytes&gt;")[0]).toHaveLength(5);
  });

  test("has axes labels, ticks, title and legend, with text escaped", () => {
    expect(svg).toContain(">step</text>");
    expect(svg).toContain(">loss (nats)</text>");
    expect(svg).toContain(">loss &amp; co</text>");
    expect(svg).toContain(">validation &lt;bytes&gt;</text>");
    expect(svg).toContain('class="legend"');
    expect((svg.match(/class="tick-labels"/g) ?? []).length).toBe(1);
    for (const t of ["10", "20", "30", "40", "50"]) expect(svg).toContain(`>${t}</text>`);
    expect(svg).toContain("stroke-dasharray");
  });

  test("non-finite values break the line instead of being drawn", () => {
    const s = linePlot([{ name: "l", points: [[1, 1], [2, 2], [3, NaN], [4, 3], [5, 4], [6, Infinity], [7, 5]] }]);
    expect(checkWellFormedXml(s)).toEqual([]);
    const runs = polylinePoints(s, "l");
    expect(runs.map((r) => r.length)).toEqual([2, 2]);
    expect(s).toContain('<circle data-series="l"'); // the lone last point
    expect(s).not.toContain("NaN");
    expect(s).not.toContain("Infinity");
  });

  test("empty data and a single point still give a valid plot; log axes work", () => {
    for (const s of [linePlot([]), linePlot([{ name: "x", points: [[1, 2]] }]), linePlot([{ name: "y", points: loss }], { logY: true })]) {
      expect(checkWellFormedXml(s)).toEqual([]);
    }
    expect(linePlot([])).toContain("no data");
  });

  test("long series are reduced, keeping the extremes", () => {
    const pts: Point[] = Array.from({ length: 100_000 }, (_, i) => [i, i === 77_777 ? 100 : Math.sin(i / 1000)]);
    const d = downsample(pts, 1000);
    expect(d.length).toBeLessThanOrEqual(1000);
    expect(d[0]).toEqual(pts[0]);
    expect(d[d.length - 1]).toEqual(pts[pts.length - 1]);
    expect(d.some(([x, y]) => x === 77_777 && y === 100)).toBe(true);
    const s = linePlot([{ name: "big", points: pts }]);
    expect(polylinePoints(s, "big")[0].length).toBeLessThanOrEqual(2000);
  });

  test("ticks and labels", () => {
    expect(niceTicks(0, 10, 5)).toEqual([0, 2, 4, 6, 8, 10]);
    expect(niceTicks(0.5, 3.5, 5)).toEqual([0.5, 1, 1.5, 2, 2.5, 3, 3.5]);
    expect(logTicks(1, 1000)).toEqual([1, 10, 100, 1000]);
    expect(tickLabel(20000)).toBe("20k");
    expect(tickLabel(0.0001)).toBe("1e-4");
    expect(tickLabel(2.5)).toBe("2.5");
    expect(escapeXml(`<a href="x">&'`)).toBe("&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
  });
});

describe("plot: heatmap", () => {
  const lengths = ["1K", "2K", "4K", "8K"];
  const depths = ["0", "0.25", "0.5", "0.75", "1"];
  const values = depths.map((_, r) => lengths.map((_, c) => (r === 2 && c === 3 ? null : (r + c) / 7)));
  const svg = heatmap({ rowLabels: depths, colLabels: lengths, values, title: "passkey accuracy", xLabel: "context length", yLabel: "needle depth" });

  test("is well-formed, with one cell per (row, col) holding its value", () => {
    expect(checkWellFormedXml(svg)).toEqual([]);
    const cells = [...svg.matchAll(/<rect data-row="(\d+)" data-col="(\d+)" data-value="([^"]*)"[^>]*fill="([^"]+)"/g)];
    expect(cells).toHaveLength(20);
    for (const [, r, c, v, fill] of cells) {
      const want = values[Number(r)][Number(c)];
      if (want === null) {
        expect(v).toBe("");
        expect(fill).toBe("url(#no-data)");
      } else {
        expect(Number(v)).toBe(want);
        expect(fill).toBe(colorScale(want));
      }
    }
  });

  test("has labels, a title and a colour bar", () => {
    for (const l of [...lengths, ...depths, "passkey accuracy", "context length", "needle depth"]) expect(svg).toContain(`>${l}</text>`);
    expect(svg).toContain('class="color-bar"');
    expect(svg).toContain(">0.43</text>"); // (1 + 2) / 7 written in its cell
  });

  test("colour scale runs from dark to bright and clamps", () => {
    expect(colorScale(0)).toBe("#440154");
    expect(colorScale(1)).toBe("#fde725");
    expect(colorScale(-5)).toBe("#440154");
    expect(colorScale(7)).toBe("#fde725");
  });

  test("a values array of the wrong shape is an error naming both shapes", () => {
    expect(() => heatmap({ rowLabels: ["a"], colLabels: ["x", "y"], values: [[1]] })).toThrow(/1 rows × 2 columns/);
  });
});
