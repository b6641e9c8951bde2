package portal

import (
	_ "embed"
	"html/template"
	"strings"
)

// worldLandPath is the SVG path data of the land outline (Natural Earth 1:110m land,
// public domain, converted from the npm package world-atlas by gen_worldmap.go):
// equirectangular, 720x360, x = (lon+180)*2, y = (90-lat)*2.
//
//go:embed world-land.path
var worldLandPath string

// worldLand is the land outline as an SVG path element, for the Activity page's map. The
// path data is the embedded file (digits, spaces, M, L and Z only), so it is safe HTML.
func worldLand() template.HTML {
	d := strings.TrimSpace(worldLandPath)
	if strings.Trim(d, "0123456789. MLZ-") != "" {
		return ""
	}
	return template.HTML(`<path class="land" d="` + d + `"/>`)
}
