package usertrace_test

import (
	"fmt"
	"time"

	"github.com/usertrace/usertrace"
	"github.com/usertrace/usertrace/tracer"
)

type QueryDone struct {
	Table string
	Rows  uint32
	Took  time.Duration
}

var queryDone = usertrace.NewEvent[QueryDone]("db", "query_done", usertrace.WithLevel(usertrace.LevelInfo))

func ExampleNewEvent() {
	// Attach an in-process tracer; with none attached, Emit costs one atomic load.
	a, err := queryDone.Attach(usertrace.TracerFunc(func(r usertrace.Record) {
		fmt.Println(string(r.AppendText(nil)))
	}))
	if err != nil {
		panic(err)
	}
	defer a.Detach()

	queryDone.Emit(QueryDone{Table: "users", Rows: 3, Took: 2 * time.Millisecond})
	// Output:
	// db:query_done: table="users", rows=3, took=2ms
}

func ExampleEvent_Enabled() {
	// Guard the call when building the value costs something: with nothing
	// attached, the arguments are not evaluated at all.
	if queryDone.Enabled() {
		queryDone.Emit(QueryDone{Table: expensiveName()})
	}
	fmt.Println("enabled:", queryDone.Enabled())
	// Output:
	// enabled: false
}

func expensiveName() string { return "computed" }

func ExampleRecord_Field() {
	a, _ := queryDone.Attach(usertrace.TracerFunc(func(r usertrace.Record) {
		rows, _ := r.Field("rows")
		took, _ := r.Field("took")
		fmt.Println(rows.Uint64(), took.Duration())
	}))
	defer a.Detach()
	queryDone.Emit(QueryDone{Table: "orders", Rows: 42, Took: time.Second})
	// Output:
	// 42 1s
}

func ExampleEvent_EmitTo() {
	// A statedump describes current state to one tracer that asks for it.
	unregister := tracer.OnStatedump(func(d *tracer.Dump) {
		queryDone.EmitTo(d, QueryDone{Table: "open_cursor", Rows: 1})
	})
	defer unregister()
	tracer.Statedump(usertrace.TracerFunc(func(r usertrace.Record) {
		fmt.Println(string(r.AppendText(nil)))
	}))
	// Output:
	// db:query_done: table="open_cursor", rows=1, took=0s
}
