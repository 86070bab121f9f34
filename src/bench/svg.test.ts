import { test } from 'node:test';
import assert from 'node:assert/strict';
import { barChartSvg, escapeXml } from './svg';

test('barChartSvg draws one bar per value, scaled to the largest, with labels and values', () => {
  const svg = barChartSvg({ title: 'Mpps <at the sink>', unit: 'Mpps', bars: [
    { label: 'xdplb nat', value: 4, min: 3, max: 5, highlight: true },
    { label: 'nftables', value: 1 },
  ] });
  assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  assert.match(svg, /Mpps &lt;at the sink&gt;/);
  const widths = [...svg.matchAll(/<rect x="\d+" y="\d+" width="([\d.]+)"/g)].map((m) => Number(m[1]));
  assert.equal(widths.length, 2);
  // The axis goes to the largest whisker (5): 4/5 and 1/5 of the plot width.
  assert.ok(Math.abs(widths[0] / widths[1] - 4) < 0.01, `widths ${widths}`);
  assert.match(svg, /4\.00 Mpps/);
  assert.match(svg, /1\.00 Mpps/);
  assert.equal((svg.match(/<line /g) ?? []).length, 4); // axis + one whisker (3 lines)
});

test('barChartSvg shows n/a for a missing value and refuses an empty chart', () => {
  const svg = barChartSvg({ title: 't', unit: 'x', bars: [{ label: 'a', value: NaN }, { label: 'b', value: 2 }] });
  assert.match(svg, /n\/a/);
  assert.throws(() => barChartSvg({ title: 'empty', unit: 'x', bars: [] }), /no bars/);
});

test('escapeXml escapes the five XML characters', () => {
  assert.equal(escapeXml(`<a & "b" 'c'>`), '&lt;a &amp; &quot;b&quot; &apos;c&apos;&gt;');
});
