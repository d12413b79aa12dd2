package mediaload

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strings"
)

// Chart geometry, in SVG user units.
const (
	chartW, chartH           = 720, 420
	padL, padR, padT, padB   = 70, 70, 40, 60
	plotW, plotH             = chartW - padL - padR, chartH - padT - padB
	yTicks                   = 5
	cpuColor, latencyColor   = "#1f77b4", "#d62728"
	baselineDash             = "6 4"
	legendX, legendY, legend = padL + 10, padT + 14, 16
)

// WriteSVG draws subscribers (x) against CPU µs per forwarded packet (left
// axis, blue) and p99 latency in ms (right axis, red), one pair of lines
// per server (the first solid, the others dashed). Steps of each server
// are drawn in the order given.
func WriteSVG(w io.Writer, title string, steps []Step) error {
	var servers []string
	by := map[string][]Step{}
	for _, s := range steps {
		if _, ok := by[s.Server]; !ok {
			servers = append(servers, s.Server)
		}
		by[s.Server] = append(by[s.Server], s)
	}
	var xMax, cpuMax, latMax float64
	for _, s := range steps {
		xMax = math.Max(xMax, float64(s.xValue()))
		cpuMax = math.Max(cpuMax, s.CPUPerPacketUs)
		latMax = math.Max(latMax, s.LatencyP99Ms)
	}
	xMax, cpuMax, latMax = niceCeil(xMax), niceCeil(cpuMax), niceCeil(latMax)

	bw := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }
	p(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", chartW, chartH, chartW, chartH)
	p(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	p(`<text x="%d" y="22" text-anchor="middle" font-size="15">%s</text>`+"\n", chartW/2, esc(title))

	// Axes, grid and ticks.
	p(`<g stroke="#999" stroke-width="1">`)
	p(`<line x1="%d" y1="%d" x2="%d" y2="%d"/>`, padL, padT, padL, padT+plotH)
	p(`<line x1="%d" y1="%d" x2="%d" y2="%d"/>`, padL+plotW, padT, padL+plotW, padT+plotH)
	p(`<line x1="%d" y1="%d" x2="%d" y2="%d"/>`, padL, padT+plotH, padL+plotW, padT+plotH)
	p("</g>\n")
	for i := 0; i <= yTicks; i++ {
		f := float64(i) / yTicks
		y := float64(padT+plotH) - f*plotH
		p(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#eee"/>`, padL, y, padL+plotW, y)
		p(`<text x="%d" y="%.1f" text-anchor="end" fill="%s">%s</text>`, padL-6, y+4, cpuColor, num(f*cpuMax))
		p(`<text x="%d" y="%.1f" fill="%s">%s</text>`+"\n", padL+plotW+6, y+4, latencyColor, num(f*latMax))
		x := float64(padL) + f*plotW
		p(`<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x, padT+plotH+18, num(f*xMax))
	}
	p(`<text x="%d" y="%d" text-anchor="middle">subscribers</text>`+"\n", padL+plotW/2, chartH-16)
	p(`<text transform="translate(18 %d) rotate(-90)" text-anchor="middle" fill="%s">server CPU µs per forwarded packet</text>`+"\n", padT+plotH/2, cpuColor)
	p(`<text transform="translate(%d %d) rotate(90)" text-anchor="middle" fill="%s">p99 latency (ms)</text>`+"\n", chartW-14, padT+plotH/2, latencyColor)

	sx := func(v float64) float64 { return float64(padL) + v/xMax*plotW }
	sy := func(v, top float64) float64 { return float64(padT+plotH) - v/top*plotH }
	for i, srv := range servers {
		dash := ""
		if i > 0 {
			dash = fmt.Sprintf(` stroke-dasharray="%s"`, baselineDash)
		}
		for _, line := range []struct {
			color string
			top   float64
			val   func(Step) float64
		}{
			{cpuColor, cpuMax, func(s Step) float64 { return s.CPUPerPacketUs }},
			{latencyColor, latMax, func(s Step) float64 { return s.LatencyP99Ms }},
		} {
			var pts []string
			for _, s := range by[srv] {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", sx(float64(s.xValue())), sy(line.val(s), line.top)))
			}
			p(`<polyline fill="none" stroke="%s" stroke-width="2"%s points="%s"/>`+"\n", line.color, dash, strings.Join(pts, " "))
			for _, pt := range pts {
				x, y, _ := strings.Cut(pt, ",")
				p(`<circle cx="%s" cy="%s" r="3" fill="%s"/>`, x, y, line.color)
			}
			p("\n")
		}
		y := legendY + i*legend
		p(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333" stroke-width="2"%s/>`, legendX, y-4, legendX+24, y-4, dash)
		p(`<text x="%d" y="%d">%s</text>`+"\n", legendX+30, y, esc(srv))
	}
	p("</svg>\n")
	return bw.Flush()
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten (1 for none).
func niceCeil(v float64) float64 {
	if v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func num(v float64) string {
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.2f", v), "0"), ".")
}

func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
