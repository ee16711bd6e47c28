// Command agentstart measures what starting the agent costs a program: the
// time agent.Start takes to return (connecting to daemons happens on
// background goroutines). It is the command behind the figure in
// docs/design.md:
//
//	go run ./internal/agentstart
//	USERTRACE_DAEMONS=/tmp/a:/tmp/b go run ./internal/agentstart
package main

import (
	"fmt"
	"time"

	"github.com/usertrace/usertrace/agent"
)

func main() {
	t0 := time.Now()
	agent.Start()
	fmt.Printf("agent.Start returned after %v (daemon directories: %v)\n", time.Since(t0), agent.Dirs())
}
