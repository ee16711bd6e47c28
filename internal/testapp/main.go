// Command testapp is an instrumented program for the end-to-end tests of
// the daemon and the CLI. Every field of every event is a function of the
// event's sequence number, so a test can check a whole trace exactly.
//
//	testapp [-n N] [-goroutines G] [-forever] [-pace] [-ready FILE] [-go FILE] [-exit FILE]
//
// It emits N events per goroutine (or until killed with -forever), writing
// the number of events committed so far to stdout every 100 ms when
// -forever is set. -ready FILE is created once the events are defined; with
// -go FILE it waits for FILE to exist before emitting; with -exit FILE it
// prints "done" after emitting and waits for FILE before exiting.
package main

import (
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/usertrace/usertrace"
)

type Color uint8

func (Color) TraceEnum() []usertrace.EnumLabel {
	return []usertrace.EnumLabel{{Value: 0, Label: "RED"}, {Value: 1, Label: "GREEN"}, {Value: 2, Label: "BLUE"}}
}

// Seq is the event the tests check field by field.
type Seq struct {
	Goroutine uint32
	Seq       uint64
	Text      string
	Half      float64
	Odd       bool
	Color     Color
	Triple    [3]uint16
	Took      time.Duration
	Neg       int32
}

// Tick is a second event type, fired every 10th Seq.
type Tick struct {
	Seq uint64
}

var (
	seqEvent  = usertrace.NewEvent[Seq]("testapp", "seq")
	tickEvent = usertrace.NewEvent[Tick]("testapp", "tick", usertrace.WithLevel(usertrace.LevelDebug))
)

// Value returns the Seq event for goroutine g and sequence number n.
func Value(g uint32, n uint64) Seq {
	return Seq{
		Goroutine: g,
		Seq:       n,
		Text:      fmt.Sprintf("msg-%d-%d", g, n),
		Half:      float64(n) / 2,
		Odd:       n%2 == 1,
		Color:     Color(n % 3),
		Triple:    [3]uint16{uint16(n), uint16(n + 1), uint16(n + 2)},
		Took:      time.Duration(n) * time.Microsecond,
		Neg:       -int32(n % 1000),
	}
}

func main() {
	n := flag.Uint64("n", 1000, "events per goroutine")
	goroutines := flag.Int("goroutines", 1, "emitting goroutines")
	forever := flag.Bool("forever", false, "emit until killed, printing progress")
	ready := flag.String("ready", "", "file to create once events are defined")
	pace := flag.Bool("pace", false, "sleep 1ms after every 1000 events (about 1M events/s)")
	goFile := flag.String("go", "", "wait for this file before emitting")
	exitFile := flag.String("exit", "", "after emitting, wait for this file before exiting")
	flag.Parse()

	if *ready != "" {
		os.WriteFile(*ready, nil, 0o644)
	}
	waitFile(*goFile)
	var committed atomic.Uint64
	if *forever {
		go func() {
			for {
				time.Sleep(100 * time.Millisecond)
				fmt.Println(committed.Load())
			}
		}()
	}
	var wg sync.WaitGroup
	for g := 0; g < *goroutines; g++ {
		wg.Add(1)
		go func(g uint32) {
			defer wg.Done()
			for i := uint64(0); *forever || i < *n; i++ {
				seqEvent.Emit(Value(g, i))
				if i%10 == 0 {
					tickEvent.Emit(Tick{Seq: i})
				}
				committed.Add(1)
				if *pace && i%1000 == 999 {
					time.Sleep(time.Millisecond)
				}
			}
		}(uint32(g))
	}
	wg.Wait()
	if *exitFile != "" {
		fmt.Println("done")
	}
	waitFile(*exitFile)
}

func waitFile(name string) {
	for name != "" {
		if _, err := os.Stat(name); err == nil {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}
