package main

import (
	"fmt"
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// chartFloor is the smallest latency the chart shows (ms): bars start there.
const chartFloor = 0.1

// chart draws the p50 latency of every operation, one bar per runtime, on a
// logarithmic axis (the operations span 0.5 ms to seconds).
func chart(path string, rows []row, rts []*runtime) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("CRI latency, p50 (%s)", machine())
	p.X.Label.Text = "milliseconds (log scale)"
	// Bars of log10(ms/floor) on a linear axis, labelled in milliseconds.
	top := chartFloor * 10
	for _, r := range rows {
		for _, rt := range rts {
			for r.Ms[rt.name]["p50"] > top {
				top *= 10
			}
		}
	}
	var ticks []plot.Tick
	for ms := chartFloor; ms <= top*1.01; ms *= 10 {
		ticks = append(ticks, plot.Tick{Value: math.Log10(ms / chartFloor), Label: fmt.Sprintf("%g", ms)})
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	p.X.Min, p.X.Max = 0, math.Log10(top/chartFloor)
	colors := []color.Color{
		color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
		color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
		color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	}
	// Operations top to bottom in the table's order: the chart's y grows upwards.
	names := make([]string, len(rows))
	for i, r := range rows {
		names[len(rows)-1-i] = r.Op
	}
	const barWidth = 5
	for i, rt := range rts {
		values := make(plotter.Values, len(rows))
		for j, r := range rows {
			values[len(rows)-1-j] = math.Log10(math.Max(r.Ms[rt.name]["p50"], chartFloor) / chartFloor)
		}
		bars, err := plotter.NewBarChart(values, vg.Points(barWidth))
		if err != nil {
			return err
		}
		bars.Horizontal = true
		bars.LineStyle.Width = 0
		bars.Color = colors[i%len(colors)]
		bars.Offset = vg.Points(float64(barWidth) * (float64(len(rts)-1)/2 - float64(i)))
		p.Add(bars)
		p.Legend.Add(rt.name, bars)
	}
	p.NominalY(names...)
	p.Legend.Left = false
	p.Add(plotter.NewGrid())
	height := vg.Points(float64(len(rows)*(len(rts)*barWidth+6)) + 120)
	return p.Save(9*vg.Inch, height, path)
}
