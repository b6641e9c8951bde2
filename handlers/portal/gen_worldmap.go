//go:build ignore

// gen_worldmap converts the land outline of the npm package world-atlas (Natural Earth's
// 1:110m land, public domain, as TopoJSON) into the SVG path the portal's Activity map
// embeds (world-land.path). It is run once, by hand:
//
//	npm pack world-atlas@2.0.2 && tar xzf world-atlas-2.0.2.tgz
//	go run gen_worldmap.go package/land-110m.json > world-land.path
//
// The projection is equirectangular on a 720x360 box: x = (lon+180)*2, y = (90-lat)*2.
package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strings"
)

type topology struct {
	Transform struct {
		Scale     [2]float64 `json:"scale"`
		Translate [2]float64 `json:"translate"`
	} `json:"transform"`
	Objects map[string]struct {
		Geometries []struct {
			Type string          `json:"type"`
			Arcs json.RawMessage `json:"arcs"`
		} `json:"geometries"`
	} `json:"objects"`
	Arcs [][][2]float64 `json:"arcs"`
}

func main() {
	raw, err := os.ReadFile(os.Args[1])
	if err != nil {
		panic(err)
	}
	var t topology
	if err := json.Unmarshal(raw, &t); err != nil {
		panic(err)
	}
	// Decode the delta-encoded, quantized arcs into longitude/latitude.
	arcs := make([][][2]float64, len(t.Arcs))
	for i, a := range t.Arcs {
		var x, y float64
		for _, pt := range a {
			x, y = x+pt[0], y+pt[1]
			arcs[i] = append(arcs[i], [2]float64{x*t.Transform.Scale[0] + t.Transform.Translate[0], y*t.Transform.Scale[1] + t.Transform.Translate[1]})
		}
	}
	ring := func(idx []int) [][2]float64 {
		var out [][2]float64
		for k, i := range idx {
			var a [][2]float64
			if i >= 0 {
				a = arcs[i]
			} else {
				src := arcs[^i]
				for j := len(src) - 1; j >= 0; j-- {
					a = append(a, src[j])
				}
			}
			if k > 0 {
				a = a[1:]
			}
			out = append(out, a...)
		}
		return out
	}
	var b strings.Builder
	for _, g := range t.Objects["land"].Geometries {
		var polys [][][]int
		switch g.Type {
		case "Polygon":
			var p [][]int
			if err := json.Unmarshal(g.Arcs, &p); err != nil {
				panic(err)
			}
			polys = [][][]int{p}
		case "MultiPolygon":
			if err := json.Unmarshal(g.Arcs, &polys); err != nil {
				panic(err)
			}
		}
		for _, p := range polys {
			for _, r := range p {
				pts := ring(r)
				lastX, lastY := "", ""
				for i, pt := range pts {
					x := fmt.Sprintf("%.1f", (pt[0]+180)*2)
					y := fmt.Sprintf("%.1f", (90-pt[1])*2)
					if x == lastX && y == lastY {
						continue
					}
					// A ring that crosses the antimeridian jumps from one edge of the map
					// to the other: start a new subpath there instead of drawing a line
					// across the world.
					if i > 0 && math.Abs(pt[0]-pts[i-1][0]) > 180 {
						b.WriteString("M" + x + " " + y)
						lastX, lastY = x, y
						continue
					}
					if i == 0 {
						b.WriteString("M")
					} else {
						b.WriteString("L")
					}
					b.WriteString(x + " " + y)
					lastX, lastY = x, y
				}
				b.WriteString("Z")
			}
		}
	}
	fmt.Println(b.String())
}
