// promcheck parses Prometheus rule files with Prometheus's own rule parser (what
// `promtool check rules` does: the YAML layout, every expression, every template) and the
// PromQL of Grafana dashboards (a .json file: every panel target's "expr").
//
//	go run . ../alerts.yml ../grafana/dashboards/activestream.json
package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

type dashboard struct {
	Panels []struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

func checkRules(p parser.Parser, f string) (int, error) {
	groups, errs := rulefmt.ParseFile(f, false, model.UTF8Validation, p, slog.Default())
	if len(errs) > 0 {
		return 0, errs[0]
	}
	n := 0
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if _, err := p.ParseExpr(r.Expr); err != nil {
				return n, fmt.Errorf("rule %q: %w", r.Alert, err)
			}
			n++
		}
	}
	return n, nil
}

func checkDashboard(p parser.Parser, f string) (int, error) {
	raw, err := os.ReadFile(f)
	if err != nil {
		return 0, err
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		return 0, err
	}
	n := 0
	for _, panel := range d.Panels {
		for _, t := range panel.Targets {
			if _, err := p.ParseExpr(t.Expr); err != nil {
				return n, fmt.Errorf("panel %q: %w", panel.Title, err)
			}
			n++
		}
	}
	return n, nil
}

func main() {
	p := parser.NewParser(parser.Options{})
	for _, f := range os.Args[1:] {
		check := checkRules
		what := "rules"
		if strings.HasSuffix(f, ".json") {
			check, what = checkDashboard, "panel queries"
		}
		n, err := check(p, f)
		if err != nil {
			fmt.Println("ERROR", f, err)
			os.Exit(1)
		}
		fmt.Println("OK", f, n, what)
	}
}
