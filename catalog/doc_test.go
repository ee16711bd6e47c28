package catalog

import (
	"bytes"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var (
	updateDoc = flag.Bool("update-doc", false, "rewrite the generated blocks of docs/description-abi.md")
	genCorpus = flag.Bool("gen-corpus", false, "rewrite the seed corpus under testdata/fuzz")
)

const docPath = "../docs/description-abi.md"

// docEvent is the event of the example in docs/description-abi.md.
func docEvent() *Event {
	return &Event{
		ID: 7, Provider: "app", Name: "hello", Level: LevelInfo,
		Fields: []Field{{"n", Type{Kind: Uint32}}, {"who", Type{Kind: String}}},
		Attrs:  []Attr{{"team", "core"}},
		File:   "main.go", Line: 12,
	}
}

func docPayload() []byte {
	return AppendString(AppendUint32(nil, 3), "Go")
}

// docBlocks are the generated blocks of the doc, by name.
func docBlocks() map[string]string {
	cat := AppendCatalog(nil, []*Event{docEvent()})
	var kinds strings.Builder
	kinds.WriteString("| number | kind | payload size |\n|---:|---|---|\n")
	for k := Bool; k < kindEnd; k++ {
		size := "variable"
		if n := k.Size(); n > 0 {
			size = fmt.Sprint(n)
		}
		if k == Enum {
			size = "of its base"
		}
		fmt.Fprintf(&kinds, "| %d | %s | %s |\n", k, k, size)
	}
	return map[string]string{
		"kinds":     kinds.String(),
		"annotated": annotate(cat, docSegments),
		"catalog":   "```\n" + hex.Dump(cat) + "```\n",
		"payload":   "```\n" + hex.Dump(docPayload()) + "```\n",
		"text":      "```\n" + string((Record{docEvent(), docPayload()}).AppendText(nil)) + "\n```\n",
	}
}

var blockRE = regexp.MustCompile(`(?s)(<!-- BEGIN generated:(\w+) -->\n)(.*?)(<!-- END generated:\w+ -->)`)

// TestDoc checks that the tables and dumps of docs/description-abi.md are
// what this package produces. Run with -update-doc to rewrite them.
func TestDoc(t *testing.T) {
	doc, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	blocks := docBlocks()
	seen := map[string]bool{}
	out := blockRE.ReplaceAllFunc(doc, func(m []byte) []byte {
		sub := blockRE.FindSubmatch(m)
		name := string(sub[2])
		seen[name] = true
		want, ok := blocks[name]
		if !ok {
			t.Errorf("doc has an unknown generated block %q", name)
			return m
		}
		if string(sub[3]) != want && !*updateDoc {
			t.Errorf("block %s of %s is stale (go test ./catalog/ -run TestDoc -args -update-doc):\n got\n%s\nwant\n%s", name, docPath, sub[3], want)
		}
		return bytes.Join([][]byte{sub[1], []byte(want), sub[4]}, nil)
	})
	for name := range blocks {
		if !seen[name] {
			t.Errorf("doc lacks the generated block %q", name)
		}
	}
	if *updateDoc && !bytes.Equal(out, doc) {
		if err := os.WriteFile(docPath, out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The limits the doc states are those of validate.go.
	for _, l := range []struct {
		name string
		v    int
	}{
		{"MaxNameLen", MaxNameLen}, {"MaxFields", MaxFields}, {"MaxDepth", MaxDepth}, {"MaxArrayLen", MaxArrayLen},
		{"MaxAttrs", MaxAttrs}, {"MaxAttrLen", MaxAttrLen}, {"MaxEnumLabel", MaxEnumLabel},
	} {
		if s := fmt.Sprintf("| %s | %d |", l.name, l.v); !bytes.Contains(doc, []byte(s)) {
			t.Errorf("doc lacks the line %q", s)
		}
	}
}

// TestFuzzCorpus checks that the checked-in seed corpus exists; run with
// -gen-corpus to write it again.
func TestFuzzCorpus(t *testing.T) {
	if *genCorpus {
		writeCorpus(t)
	}
	for _, name := range []string{"FuzzDecodeCatalog", "FuzzCursor"} {
		files, _ := filepath.Glob(filepath.Join("testdata", "fuzz", name, "*"))
		if len(files) < 5 {
			t.Errorf("%d seed files for %s, want at least 5 (go test ./catalog/ -run TestFuzzCorpus -args -gen-corpus)", len(files), name)
		}
	}
}

func writeCorpus(t *testing.T) {
	write := func(target, name string, args ...any) {
		var b strings.Builder
		b.WriteString("go test fuzz v1\n")
		for _, a := range args {
			switch a := a.(type) {
			case uint8:
				fmt.Fprintf(&b, "byte(%q)\n", a)
			case []byte:
				fmt.Fprintf(&b, "[]byte(%q)\n", a)
			default:
				t.Fatalf("type %T", a)
			}
		}
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "seed-"+name), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	all := AppendCatalog(nil, testEvents())
	write("FuzzDecodeCatalog", "all", all)
	write("FuzzDecodeCatalog", "empty", AppendCatalog(nil, nil))
	write("FuzzDecodeCatalog", "doc", AppendCatalog(nil, []*Event{docEvent()}))
	for i, e := range testEvents() {
		write("FuzzDecodeCatalog", fmt.Sprintf("event%d-%s", i, e.Name), AppendCatalog(nil, []*Event{e}))
	}
	write("FuzzDecodeCatalog", "cut-header", all[:HeaderSize-2])
	write("FuzzDecodeCatalog", "cut-first-record", all[:HeaderSize+40])
	write("FuzzDecodeCatalog", "cut-half", all[:len(all)/2])
	write("FuzzDecodeCatalog", "cut-end", all[:len(all)-3])
	write("FuzzDecodeCatalog", "later-version", laterVersionCatalog())

	evs := fuzzEvents()
	payloads := [][]byte{scalarsPayload(), requestPayload(), nil, {1, 2}, deepPayload(),
		cat(u32le(2), []byte{1, 2}, u32le(1), u32le(0x3fc00000), u32le(1), []byte{9}, u32le(1), u64le(1), []byte("x\x00"))}
	for i, p := range payloads {
		write("FuzzCursor", fmt.Sprintf("event%d-%s", i, evs[i].Name), uint8(i), p)
		if len(p) > 2 {
			write("FuzzCursor", fmt.Sprintf("event%d-%s-cut", i, evs[i].Name), uint8(i), p[:len(p)/2])
		}
	}
}

// laterVersionCatalog is a catalog as a later version might write it (see
// TestForwardCompatible).
func laterVersionCatalog() []byte {
	extra := []byte{0xaa, 0xbb}
	fields := cat(u16le(2),
		field("a", typ(Uint8, extra), extra),
		field("f", typ(Kind(250), []byte("future"))),
	)
	attrs := cat(u16le(2), attr(AttrString, str("k"), str("v"), extra), attr(77, []byte("future")))
	return cat(header(2, HeaderSize+4, 2, 1, 2, 3, 4), rec(TagEvent, eventBody(fields, attrs), extra), rec(99, []byte("future")))
}

// docSegments explain the bytes of the doc's example catalog, in order.
var docSegments = []struct {
	n    int
	what string
}{
	{4, "magic \"UTCG\""},
	{2, "version 1"},
	{2, "header size 12"},
	{4, "record count 1"},
	{1, "record tag 1: event"},
	{4, "record length: 77 bytes follow"},
	{4, "event id 7"},
	{1, "level 6: info"},
	{5, "provider: length 3, \"app\""},
	{7, "name: length 5, \"hello\""},
	{9, "file: length 7, \"main.go\""},
	{4, "line 12"},
	{2, "field count 2"},
	{4, "field length: 8 bytes follow"},
	{3, "field name: length 1, \"n\""},
	{1, "type kind 8: uint32"},
	{4, "type body length 0"},
	{4, "field length: 10 bytes follow"},
	{5, "field name: length 3, \"who\""},
	{1, "type kind 12: string"},
	{4, "type body length 0"},
	{2, "attribute count 1"},
	{4, "attribute length: 13 bytes follow"},
	{1, "attribute value kind 1: string"},
	{6, "key: length 4, \"team\""},
	{6, "value: length 4, \"core\""},
}

// annotate renders b as a table of the segments, or says that they do not
// cover b exactly.
func annotate(b []byte, segs []struct {
	n    int
	what string
}) string {
	var out strings.Builder
	out.WriteString("| offset | bytes | meaning |\n|---:|---|---|\n")
	off := 0
	for _, s := range segs {
		if off+s.n > len(b) {
			return "segments run past the encoding\n"
		}
		fmt.Fprintf(&out, "| %d | `% x` | %s |\n", off, b[off:off+s.n], s.what)
		off += s.n
	}
	if off != len(b) {
		return "segments do not cover the encoding\n"
	}
	return out.String()
}
