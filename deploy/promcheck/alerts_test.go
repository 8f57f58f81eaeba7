// What each alert of ../alerts.yml says about made-up series, evaluated by Prometheus's own
// PromQL engine (an instant query at the end of two hours of samples, 15 s apart, as the
// services are scraped): that it fires when its summary says, and only then.
//
//	go test .
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
)

const (
	step   = 15 * time.Second
	window = 2 * time.Hour
)

var start = time.Unix(1_700_000_000, 0)

// A series: its labels (name first) and its value at each scrape, from its minutes ago `from`
// to `until` (0: now).
type series struct {
	labels      []string
	from, until time.Duration
	value       func(ago time.Duration) float64
}

func constant(v float64) func(time.Duration) float64 { return func(time.Duration) float64 { return v } }

// perMinute: a counter growing by n a minute until `since` ago and flat before (c0 at the start).
func perMinute(c0, n float64, since time.Duration) func(time.Duration) float64 {
	return func(ago time.Duration) float64 {
		if ago >= since {
			return c0
		}
		return c0 + n*(since-ago).Minutes()
	}
}

func gauge(v float64, l ...string) series { return series{labels: l, from: window, value: constant(v)} }

// A float sample (chunks.Sample).
type point struct {
	t int64
	f float64
}

func (p point) T() int64                    { return p.t }
func (point) ST() int64                     { return 0 }
func (p point) F() float64                  { return p.f }
func (point) H() *histogram.Histogram       { return nil }
func (point) FH() *histogram.FloatHistogram { return nil }
func (point) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (p point) Copy() chunks.Sample         { return p }

type sliceSet struct {
	s []storage.Series
	i int
}

func (s *sliceSet) Next() bool                        { s.i++; return s.i <= len(s.s) }
func (s *sliceSet) At() storage.Series                { return s.s[s.i-1] }
func (s *sliceSet) Err() error                        { return nil }
func (s *sliceSet) Warnings() annotations.Annotations { return nil }

func queryable(ss []series) storage.Queryable {
	var all []storage.Series
	end := start.Add(window)
	for _, s := range ss {
		var samples []chunks.Sample
		for t := end.Add(-s.from); !t.After(end.Add(-s.until)); t = t.Add(step) {
			samples = append(samples, point{t.UnixMilli(), s.value(end.Sub(t))})
		}
		all = append(all, storage.NewListSeries(labels.FromStrings(s.labels...), samples))
	}
	sort.Slice(all, func(i, j int) bool { return labels.Compare(all[i].Labels(), all[j].Labels()) < 0 })
	return &storage.MockQueryable{MockQuerier: &storage.MockQuerier{
		SelectMockFunction: func(_ bool, _ *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
			var out []storage.Series
			for _, s := range all {
				if !slices.ContainsFunc(ms, func(m *labels.Matcher) bool { return !m.Matches(s.Labels().Get(m.Name)) }) {
					out = append(out, s)
				}
			}
			return &sliceSet{s: out}
		},
	}}
}

func rules(t *testing.T) map[string]string {
	t.Helper()
	groups, errs := rulefmt.ParseFile("../alerts.yml", false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.Default())
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	out := map[string]string{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			out[r.Alert] = r.Expr
		}
	}
	return out
}

// What the alert's expression gives now: "labels=value" per element, sorted; "" when it does not fire.
func eval(t *testing.T, alert string, ss ...series) string {
	t.Helper()
	expr, ok := rules(t)[alert]
	if !ok {
		t.Fatalf("no alert %s", alert)
	}
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1_000_000, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	q, err := engine.NewInstantQuery(context.Background(), queryable(ss), nil, expr, start.Add(window))
	if err != nil {
		t.Fatal(err)
	}
	res := q.Exec(context.Background())
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	v, err := res.Vector()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range v {
		out = append(out, fmt.Sprintf("%s=%.6g", s.Metric.String(), s.F))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func expect(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s: got %q, want %q", what, got, want)
	}
}

func up(job, instance string, v float64) series {
	return gauge(v, "__name__", "up", "job", job, "instance", instance)
}

func allUp() []series {
	return []series{up("scorer", "s1", 1), up("scorer", "s2", 1), up("retrainer", "r", 1), up("dispatcher", "d", 1), up("labeler-api", "l", 1)}
}

func without(ss []series, instance string) []series {
	return slices.DeleteFunc(slices.Clone(ss), func(s series) bool { return slices.Contains(s.labels, instance) })
}

func TestServiceDownAndMissing(t *testing.T) {
	expect(t, "all up: down", eval(t, "ActivestreamServiceDown", allUp()...), "")
	expect(t, "all up: missing", eval(t, "ActivestreamServiceMissing", allUp()...), "")
	// A target that does not answer is down; a container that exited has no target at all.
	expect(t, "dispatcher not answering", eval(t, "ActivestreamServiceDown", append(without(allUp(), "d"), up("dispatcher", "d", 0))...),
		`{__name__="up", instance="d", job="dispatcher"}=0`)
	expect(t, "retrainer exited: down", eval(t, "ActivestreamServiceDown", without(allUp(), "r")...), "")
	expect(t, "retrainer exited", eval(t, "ActivestreamServiceMissing", without(allUp(), "r")...), `{job="retrainer"}=1`)
	expect(t, "labeler-api exited", eval(t, "ActivestreamServiceMissing", without(allUp(), "l")...), `{job="labeler-api"}=1`)
	expect(t, "one scorer of two exited", eval(t, "ActivestreamServiceMissing", without(allUp(), "s2")...), `{job="scorer"}=1`)
	expect(t, "both scorers exited", eval(t, "ActivestreamServiceMissing", without(without(allUp(), "s1"), "s2")...), `{job="scorer"}=1`)
	// Gone 10 minutes ago: no sample within the 5 minute lookback.
	gone := append(without(allUp(), "r"), series{labels: []string{"__name__", "up", "job", "retrainer", "instance", "r"}, from: window, until: 10 * time.Minute, value: constant(1)})
	expect(t, "retrainer gone 10 min ago", eval(t, "ActivestreamServiceMissing", gone...), `{job="retrainer"}=1`)
}

func TestCampaignServiceGone(t *testing.T) {
	// Two campaigns on one Prometheus; camp-b's only scorer exited 10 minutes ago (its series stopped), camp-a's run.
	version := func(name, instance, namespace string, until time.Duration) series {
		return series{labels: []string{"__name__", name, "instance", instance, "namespace", namespace}, from: window, until: until, value: constant(3)}
	}
	const alert = "ActivestreamCampaignServiceGone"
	running := []series{version("activestream_scorer_model_version", "s1", "camp-a", 0), version("activestream_scorer_model_version", "s2", "camp-b", 0),
		version("activestream_retrainer_model_version", "r1", "camp-a", 0), version("activestream_retrainer_model_version", "r2", "camp-b", 0)}
	expect(t, "both running", eval(t, alert, running...), "")
	scorerGone := append(without(running, "s2"), version("activestream_scorer_model_version", "s2", "camp-b", 10*time.Minute))
	expect(t, "camp-b's scorer gone", eval(t, alert, scorerGone...), `{namespace="camp-b", service="scorer"}=3`)
	retrainerGone := append(without(running, "r1"), version("activestream_retrainer_model_version", "r1", "camp-a", 10*time.Minute))
	expect(t, "camp-a's retrainer gone", eval(t, alert, retrainerGone...), `{namespace="camp-a", service="retrainer"}=3`)
	// A scorer replaced by another of its campaign (a new instance): the campaign still has one.
	replaced := append(scorerGone, version("activestream_scorer_model_version", "s3", "camp-b", 0))
	expect(t, "camp-b's scorer replaced", eval(t, alert, replaced...), "")
}

func TestScorerNotOnNewestModel(t *testing.T) {
	retrainer := func(v float64) series {
		return gauge(v, "__name__", "activestream_retrainer_model_version", "instance", "r")
	}
	scorer := func(instance string, v float64) series {
		return gauge(v, "__name__", "activestream_scorer_model_version", "instance", instance)
	}
	const alert = "ActivestreamScorerNotOnNewestModel"
	expect(t, "both on v3", eval(t, alert, retrainer(3), scorer("s1", 3), scorer("s2", 3)), "")
	expect(t, "one on v2", eval(t, alert, retrainer(3), scorer("s1", 3), scorer("s2", 2)), `{__name__="activestream_scorer_model_version", instance="s2"}=2`)
	expect(t, "one without a model", eval(t, alert, retrainer(3), scorer("s1", 3), scorer("s2", 0)), `{__name__="activestream_scorer_model_version", instance="s2"}=0`)
	expect(t, "no model yet", eval(t, alert, retrainer(0), scorer("s1", 0)), "")
	// A user's v50 served while the newest published is v19: ahead is as wrong as behind.
	expect(t, "one ahead", eval(t, alert, retrainer(19), scorer("s1", 50), scorer("s2", 19)), `{__name__="activestream_scorer_model_version", instance="s1"}=50`)
}

func TestItemsPilingUp(t *testing.T) {
	// Each scorer reports the lag of the partitions it is assigned: the sum is the topic's.
	lag := func(instance string, v float64) series {
		return gauge(v, "__name__", "activestream_consumer_lag", "instance", instance, "topic", "activestream.items")
	}
	expect(t, "60k + 60k", eval(t, "ActivestreamItemsPilingUp", lag("s1", 60_000), lag("s2", 60_000)), `{topic="activestream.items"}=120000`)
	expect(t, "40k + 40k", eval(t, "ActivestreamItemsPilingUp", lag("s1", 40_000), lag("s2", 40_000)), "")
}

func TestDeadLetters(t *testing.T) {
	// The counters are per reason: a service that never dead-lettered has no series of it.
	scorer := series{labels: []string{"__name__", "activestream_dead_letters_total", "instance", "s1", "source", "items", "reason", "features"},
		from: window, value: perMinute(5, 2, 30*time.Minute)}
	retrainer := series{labels: []string{"__name__", "activestream_retrainer_dead_letters_total", "instance", "r", "reason", "label"},
		from: window, value: perMinute(1, 1, 30*time.Minute)}
	flat := series{labels: scorer.labels, from: window, value: constant(5)}
	expect(t, "the scorer only", eval(t, "ActivestreamDeadLetters", scorer), "{}=0.0333333")
	expect(t, "the retrainer only", eval(t, "ActivestreamDeadLetters", retrainer), "{}=0.0166667")
	expect(t, "both", eval(t, "ActivestreamDeadLetters", scorer, retrainer), "{}=0.05")
	expect(t, "none for an hour", eval(t, "ActivestreamDeadLetters", flat), "")
	expect(t, "no series", eval(t, "ActivestreamDeadLetters"), "")
	// A burst (8 bad records at once, 3 minutes ago) on the scorer's series, there at 0 from its start: it shows. A series
	// born at 8 (created on first use, as before) has no rate: the burst went unalerted.
	burst := func(before float64) series {
		return series{labels: scorer.labels, from: window, value: func(ago time.Duration) float64 {
			if ago >= 3*time.Minute {
				return before
			}
			return before + 8
		}}
	}
	expect(t, "a burst on a series at 0", eval(t, "ActivestreamDeadLetters", burst(0)), "{}=0.0266667")
	born := series{labels: scorer.labels, from: 3 * time.Minute, value: constant(8)}
	expect(t, "a series born at 8", eval(t, "ActivestreamDeadLetters", born), "")
}

func TestModelsRejected(t *testing.T) {
	reason := func(r string, perHour float64) series {
		return series{labels: []string{"__name__", "activestream_models_rejected_total", "instance", "r", "reason", r},
			from: window, value: perMinute(1, perHour/60, 90*time.Minute)}
	}
	got := eval(t, "ActivestreamModelsRejected", reason("held-out", 2), reason("rows", 2))
	if !strings.HasPrefix(got, "{}=4") {
		t.Errorf("2 + 2 rejected in the hour: got %q, want {}=4", got)
	}
	expect(t, "3 in the hour", eval(t, "ActivestreamModelsRejected", reason("held-out", 3)), "")
}

func TestQueueStale(t *testing.T) {
	age := func(instance string, v float64) series {
		return gauge(v, "__name__", "activestream_oldest_pending_age_seconds", "instance", instance)
	}
	expect(t, "two days", eval(t, "ActivestreamQueueStale", age("s1", 172_800), age("s2", 172_800)), "{}=172800")
	expect(t, "an hour", eval(t, "ActivestreamQueueStale", age("s1", 3600)), "")
}

// Two campaigns (namespaces) on one Prometheus, each scorer on its own retrainer's newest
// version: no alert fires. Compared across campaigns, v7 > v3 would fire.
func TestTwoCampaignsAreComparedWithinTheirNamespace(t *testing.T) {
	version := func(name, ns, instance string, v float64) series {
		return gauge(v, "__name__", name, "namespace", ns, "instance", instance)
	}
	a := []series{version("activestream_retrainer_model_version", "a", "ra", 3), version("activestream_scorer_model_version", "a", "sa1", 3),
		version("activestream_scorer_model_version", "a", "sa2", 3)}
	b := []series{version("activestream_retrainer_model_version", "b", "rb", 7), version("activestream_scorer_model_version", "b", "sb", 7)}
	expect(t, "each on its newest", eval(t, "ActivestreamScorerNotOnNewestModel", append(slices.Clone(a), b...)...), "")
	behind := append(slices.Clone(a), b[0], version("activestream_scorer_model_version", "b", "sb", 6))
	expect(t, "b's scorer behind", eval(t, "ActivestreamScorerNotOnNewestModel", behind...),
		`{__name__="activestream_scorer_model_version", instance="sb", namespace="b"}=6`)
	// 2 rejected in each campaign: 4 in all, but no campaign over 3.
	rejected := func(ns string) series {
		return series{labels: []string{"__name__", "activestream_models_rejected_total", "namespace", ns, "instance", "r" + ns, "reason", "held-out"},
			from: window, value: perMinute(1, 2.0/60, 90*time.Minute)}
	}
	expect(t, "2 + 2 in two campaigns", eval(t, "ActivestreamModelsRejected", rejected("a"), rejected("b")), "")
	lag := func(ns string) series {
		return gauge(60_000, "__name__", "activestream_consumer_lag", "namespace", ns, "instance", "s"+ns, "topic", "activestream.items")
	}
	expect(t, "60k in each campaign", eval(t, "ActivestreamItemsPilingUp", lag("a"), lag("b")), "")
	dead := series{labels: []string{"__name__", "activestream_dead_letters_total", "namespace", "b", "instance", "sb", "source", "items", "reason", "features"},
		from: window, value: perMinute(5, 2, 30*time.Minute)}
	expect(t, "dead letters in b", eval(t, "ActivestreamDeadLetters", dead), `{namespace="b"}=0.0333333`)
}

// The services' own /metrics text (written by tests/unit/test_compose.py from their registries,
// one file per target, in $PROMCHECK_EXPOSITION), held constant for two hours: no alert fires.
func TestTheServicesOwnSeriesRaiseNoAlert(t *testing.T) {
	dir := os.Getenv("PROMCHECK_EXPOSITION")
	if dir == "" {
		t.Skip("PROMCHECK_EXPOSITION not set (tests/unit/test_compose.py sets it)")
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.prom"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no *.prom files in %s (%v)", dir, err)
	}
	ss := allUp()
	sample := regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$`)
	label := regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)
	for _, f := range files {
		text, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(text), "\n") {
			m := sample.FindStringSubmatch(line)
			if m == nil || strings.HasPrefix(line, "#") {
				continue
			}
			v, err := strconv.ParseFloat(m[3], 64)
			if err != nil {
				t.Fatalf("%s: %q: %v", f, line, err)
			}
			l := []string{"__name__", m[1], "instance", filepath.Base(f)}
			for _, kv := range label.FindAllStringSubmatch(m[2], -1) {
				l = append(l, kv[1], kv[2])
			}
			ss = append(ss, gauge(v, l...))
		}
	}
	for alert := range rules(t) {
		expect(t, alert, eval(t, alert, ss...), "")
	}
}

func TestScorerPaused(t *testing.T) {
	paused := func(instance string, v float64) series {
		return gauge(v, "__name__", "activestream_scorer_paused", "instance", instance)
	}
	expect(t, "one paused", eval(t, "ActivestreamScorerPaused", paused("s1", 1), paused("s2", 0)), `{instance="s1"}=1`)
	expect(t, "none paused", eval(t, "ActivestreamScorerPaused", paused("s1", 0), paused("s2", 0)), "")
}

func TestAutoAcceptPaused(t *testing.T) {
	paused := func(namespace, instance string, v float64) series {
		return gauge(v, "__name__", "activestream_auto_accept_paused", "namespace", namespace, "instance", instance)
	}
	expect(t, "one campaign paused", eval(t, "ActivestreamAutoAcceptPaused", paused("a", "s1", 1), paused("b", "s2", 0)), `{namespace="a"}=1`)
	expect(t, "none paused", eval(t, "ActivestreamAutoAcceptPaused", paused("a", "s1", 0), paused("b", "s2", 0)), "")
}
