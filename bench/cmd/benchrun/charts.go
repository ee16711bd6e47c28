package main

import (
	"fmt"
	"html"
	"math"
	"strconv"
	"strings"
)

// The charts are plain SVG written by hand: no dependency, readable diffs.

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"}

func charts(r *Results) map[string]string {
	return map[string]string{
		"comparison.svg": comparisonChart(r),
		"scaling.svg":    scalingChart(r),
	}
}

type svgDoc struct{ b strings.Builder }

func newSVG(w, h int) *svgDoc {
	s := &svgDoc{}
	fmt.Fprintf(&s.b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">`+"\n", w, h, w, h)
	fmt.Fprintf(&s.b, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	return s
}

func (s *svgDoc) text(x, y float64, anchor, style, t string) {
	fmt.Fprintf(&s.b, `<text x="%.1f" y="%.1f" text-anchor="%s" %s>%s</text>`+"\n", x, y, anchor, style, html.EscapeString(t))
}

func (s *svgDoc) line(x1, y1, x2, y2 float64, style string) {
	fmt.Fprintf(&s.b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" %s/>`+"\n", x1, y1, x2, y2, style)
}

func (s *svgDoc) String() string { return s.b.String() + "</svg>\n" }

// logTicks returns the powers of ten between lo and hi.
func logTicks(lo, hi float64) []float64 {
	var t []float64
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		t = append(t, math.Pow(10, e))
	}
	return t
}

func tickLabel(v float64) string {
	switch {
	case v >= 1e9:
		return fmt.Sprintf("%gG", v/1e9)
	case v >= 1e6:
		return fmt.Sprintf("%gM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%gk", v/1e3)
	}
	return fmt.Sprintf("%g", v)
}

// comparisonChart: one horizontal bar per row of the table, ns/event on a
// log scale, median bar with a min–max whisker.
func comparisonChart(r *Results) string {
	var rows []Row
	for _, row := range r.Rows {
		if row.Group == "compare" && row.Metrics["ns_per_event"].N > 0 {
			rows = append(rows, row)
		}
	}
	const left, right, top, barH, gap = 500.0, 100.0, 60.0, 16.0, 6.0
	width := 1200.0
	height := top + float64(len(rows))*(barH+gap) + 60
	s := newSVG(int(width), int(height))
	s.text(width/2, 22, "middle", `font-size="16" font-weight="bold"`, "Cost per event, ns (log scale; bar = median, whisker = min–max)")
	s.text(width/2, 40, "middle", `fill="#555"`, fmt.Sprintf("%s × %d, %s, %s, %s", r.Env.CPU, r.Env.CPUs, r.Env.Kernel, r.Env.GoVersion, r.Env.Date))
	lo, hi := math.Inf(1), 0.0
	for _, row := range rows {
		m := row.Metrics["ns_per_event"]
		lo, hi = math.Min(lo, m.Min), math.Max(hi, m.Max)
	}
	lo = math.Pow(10, math.Floor(math.Log10(math.Max(lo, 0.01))))
	hi = math.Pow(10, math.Ceil(math.Log10(hi)))
	plotW := width - left - right
	x := func(v float64) float64 {
		v = math.Max(v, lo)
		return left + plotW*(math.Log10(v)-math.Log10(lo))/(math.Log10(hi)-math.Log10(lo))
	}
	bottom := top + float64(len(rows))*(barH+gap)
	for _, t := range logTicks(lo, hi) {
		s.line(x(t), top-4, x(t), bottom, `stroke="#ddd"`)
		s.text(x(t), bottom+16, "middle", `fill="#333"`, tickLabel(t))
	}
	s.text(left+plotW/2, bottom+34, "middle", `fill="#333"`, "ns per event")
	for i, row := range rows {
		y := top + float64(i)*(barH+gap)
		m := row.Metrics["ns_per_event"]
		color := "#999"
		if row.System == "usertrace" {
			color = palette[0]
		} else if strings.HasPrefix(row.System, "LTTng") {
			color = palette[1]
		}
		label := fmt.Sprintf("%s — %s", row.System, row.Mode)
		if r := []rune(label); len(r) > 80 {
			label = string(r[:78]) + "…"
		}
		s.text(left-8, y+barH-4, "end", "", label)
		fmt.Fprintf(&s.b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`+"\n", left, y, math.Max(x(m.Median)-left, 1), barH, color)
		s.line(x(m.Min), y+barH/2, x(m.Max), y+barH/2, `stroke="black" stroke-width="1.5"`)
		s.line(x(m.Min), y+3, x(m.Min), y+barH-3, `stroke="black"`)
		s.line(x(m.Max), y+3, x(m.Max), y+barH-3, `stroke="black"`)
		s.text(x(m.Max)+6, y+barH-4, "start", `fill="#333"`, num(m.Median)+" ns")
	}
	s.line(left, top-4, left, bottom, `stroke="black"`)
	return s.String()
}

// scalingChart: four panels, one per scaling, a line per series with
// min–max whiskers.
func scalingChart(r *Results) string {
	const pw, ph, cols = 520.0, 330.0, 2
	width := pw * cols
	height := ph*2 + 40
	s := newSVG(int(width), int(height))
	s.text(width/2, 24, "middle", `font-size="16" font-weight="bold"`, "How cost grows (median, whisker = min–max)")
	for i, g := range scalings {
		ox, oy := float64(i%cols)*pw, 40+float64(i/cols)*ph
		panel(s, r, g, ox, oy, pw, ph)
	}
	return s.String()
}

func panel(s *svgDoc, r *Results, g scaling, ox, oy, pw, ph float64) {
	rows := groupRows(r, g.group)
	const ml, mr, mt, mb = 70.0, 20.0, 30.0, 95.0
	x0, x1, y0, y1 := ox+ml, ox+pw-mr, oy+ph-mb, oy+mt
	s.text((x0+x1)/2, oy+18, "middle", `font-weight="bold"`, g.title)
	if len(rows) == 0 {
		s.text((x0+x1)/2, (y0+y1)/2, "middle", `fill="#999"`, "not measured in this run")
		return
	}
	series, xs := seriesOf(rows)
	// x: positions are the index of the value (the values are 1,2,4,8 /
	// 10..100000 / 0..4096: evenly spaced reads best).
	xpos := func(v int) float64 {
		for i, x := range xs {
			if x == v {
				if len(xs) == 1 {
					return (x0 + x1) / 2
				}
				return x0 + (x1-x0)*float64(i)/float64(len(xs)-1)
			}
		}
		return x0
	}
	lo, hi := math.Inf(1), 0.0
	for _, row := range rows {
		m := row.Metrics[g.metric]
		if m.N > 0 {
			lo, hi = math.Min(lo, m.Min), math.Max(hi, m.Max)
		}
	}
	if hi == 0 {
		return
	}
	var ypos func(float64) float64
	var ticks []float64
	if g.logY {
		lo = math.Pow(10, math.Floor(math.Log10(math.Max(lo, 0.01))))
		hi = math.Pow(10, math.Ceil(math.Log10(hi)))
		ypos = func(v float64) float64 {
			v = math.Max(v, lo)
			return y0 - (y0-y1)*(math.Log10(v)-math.Log10(lo))/(math.Log10(hi)-math.Log10(lo))
		}
		ticks = logTicks(lo, hi)
	} else {
		lo = 0
		step := math.Pow(10, math.Floor(math.Log10(hi)))
		for hi/step < 4 {
			step /= 2
		}
		hi = math.Ceil(hi/step) * step
		ypos = func(v float64) float64 { return y0 - (y0-y1)*v/hi }
		for t := 0.0; t <= hi+step/2; t += step {
			ticks = append(ticks, t)
		}
	}
	for _, t := range ticks {
		s.line(x0, ypos(t), x1, ypos(t), `stroke="#e5e5e5"`)
		s.text(x0-6, ypos(t)+4, "end", `fill="#333" font-size="11"`, tickLabel(t))
	}
	for _, x := range xs {
		l := strconv.Itoa(x)
		if x >= 10000 {
			l = tickLabel(float64(x))
		}
		s.text(xpos(x), y0+16, "middle", `fill="#333" font-size="11"`, l)
	}
	s.line(x0, y0, x1, y0, `stroke="black"`)
	s.line(x0, y0, x0, y1, `stroke="black"`)
	s.text((x0+x1)/2, y0+32, "middle", `fill="#333"`, g.xlabel)
	fmt.Fprintf(&s.b, `<text transform="translate(%.1f,%.1f) rotate(-90)" text-anchor="middle" fill="#333">%s</text>`+"\n", ox+16, (y0+y1)/2, g.metricLabel)
	nut := 0
	for si, name := range series {
		color := palette[1] // LTTng: red, as in the comparison
		if !strings.HasPrefix(name, "LTTng") {
			color = []string{palette[0], palette[2], palette[3], palette[4]}[nut%4]
			nut++
		}
		var pts []string
		for _, x := range xs {
			for _, row := range rows {
				if row.X != x || seriesName(row) != name {
					continue
				}
				m := row.Metrics[g.metric]
				if m.N == 0 {
					continue
				}
				px := xpos(x)
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", px, ypos(m.Median)))
				s.line(px, ypos(m.Min), px, ypos(m.Max), fmt.Sprintf(`stroke="%s"`, color))
				fmt.Fprintf(&s.b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", px, ypos(m.Median), color)
			}
		}
		fmt.Fprintf(&s.b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", strings.Join(pts, " "), color)
		ly := y0 + 50 + float64(si)*15
		s.line(x0, ly-4, x0+18, ly-4, fmt.Sprintf(`stroke="%s" stroke-width="2"`, color))
		s.text(x0+24, ly, "start", `font-size="11"`, name)
	}
}
