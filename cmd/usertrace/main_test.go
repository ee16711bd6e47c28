package main

import (
	"bytes"
	"flag"
	"reflect"
	"strings"
	"testing"
)

func TestParseInterspersed(t *testing.T) {
	for _, c := range []struct {
		args []string
		s    string
		rest []string
	}{
		{[]string{"-s", "web", "http:*"}, "web", []string{"http:*"}},
		{[]string{"http:*", "-s", "web", "db:*"}, "web", []string{"http:*", "db:*"}},
		{[]string{"http:*", "--", "-s"}, "default", []string{"http:*", "-s"}},
		{nil, "default", []string{}},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		s := fs.String("s", "default", "")
		if err := parseInterspersed(fs, c.args); err != nil {
			t.Fatal(err)
		}
		if *s != c.s || !reflect.DeepEqual(append([]string{}, fs.Args()...), c.rest) {
			t.Errorf("%q: -s %q, args %q; want %q, %q", c.args, *s, fs.Args(), c.s, c.rest)
		}
	}
}

func TestUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"help"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "usertrace record") {
		t.Fatalf("help: exit %d, %q", code, out.String())
	}
	if code := run([]string{"frobnicate"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), `unknown command "frobnicate"`) {
		t.Fatalf("unknown command: exit %d, %q", code, errb.String())
	}
	errb.Reset()
	if code := run([]string{"record"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "no command given") {
		t.Fatalf("record without a command: exit %d, %q", code, errb.String())
	}
	errb.Reset()
	if code := run([]string{"-d", t.TempDir(), "status"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "no daemon at") {
		t.Fatalf("status without a daemon: exit %d, %q", code, errb.String())
	}
}
