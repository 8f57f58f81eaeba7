// promcheck parses Prometheus rule files with Prometheus's own rule parser (what
// `promtool check rules` does): the YAML layout, every expression, every template.
//
//	go run . ../alerts.yml
package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

func main() {
	p := parser.NewParser(parser.Options{})
	for _, f := range os.Args[1:] {
		groups, errs := rulefmt.ParseFile(f, false, model.UTF8Validation, p, slog.Default())
		if len(errs) > 0 {
			for _, e := range errs {
				fmt.Println("ERROR", f, e)
			}
			os.Exit(1)
		}
		n := 0
		for _, g := range groups.Groups {
			for _, r := range g.Rules {
				if _, err := p.ParseExpr(r.Expr); err != nil {
					fmt.Println("ERROR expr", r.Alert, err)
					os.Exit(1)
				}
				n++
			}
		}
		fmt.Println("OK", f, n, "rules")
	}
}
