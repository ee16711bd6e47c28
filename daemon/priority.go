package daemon

import "github.com/usertrace/usertrace/internal/sched"

// ConsumerNice is the nice value RaisePriority gives the daemon.
const ConsumerNice = -5

// RaisePriority makes every thread of this process run at ConsumerNice, so
// that the daemon's own work (accepting apps, answering clients, counting)
// is not starved when the traced programs keep every CPU busy. Draining a
// busy ring goes further: its thread is real-time while the burst lasts
// (see [Config.NoRealtime] and package internal/sched). It needs
// CAP_SYS_NICE (root); without it, it changes nothing and returns the
// error. Call it after starting any child process, which would otherwise
// inherit the priority.
func RaisePriority() error { return sched.NiceAllThreads(ConsumerNice) }
