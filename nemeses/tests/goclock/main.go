// A Go target for the vDSO clock patch (tests/vdso_clock.rs builds it with `go build`). Go reads
// the clock from the vDSO without libc, so no preload can shift it; only a patched vDSO can.
//
// Reads commands from standard input, answers each, then a line "end":
//
//	once   "time_now <offset_ms>": time.Now() minus CLOCK_REALTIME read by raw system call
//	       (which no patch can change), rounded to milliseconds, from a sample that was not
//	       preempted (two kernel reads less than 0.2 ms apart around it)
//
// Four goroutines keep reading the clock meanwhile, so that threads are inside the vDSO while
// the patch is applied and removed. Exits at end of input.
package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

func kernelRealtimeNs() int64 {
	var ts syscall.Timespec
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, 0, uintptr(unsafe.Pointer(&ts)), 0)
	return ts.Nano()
}

func roundMs(ns int64) int64 {
	if ns >= 0 {
		return (ns + 500000) / 1000000
	}
	return -((-ns + 500000) / 1000000)
}

func main() {
	for i := 0; i < 4; i++ {
		go func() {
			for {
				_ = time.Now()
				time.Sleep(time.Millisecond)
			}
		}()
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch strings.TrimSpace(in.Text()) {
		case "once":
			// Bracketed by two kernel reads; a sample preempted in between says nothing.
			var off int64
			for try := 0; try < 100; try++ {
				before := kernelRealtimeNs()
				now := time.Now().UnixNano()
				after := kernelRealtimeNs()
				off = now - before
				if after-before < 200000 {
					break
				}
			}
			fmt.Printf("time_now %d\n", roundMs(off))
		case "":
			continue
		default:
			fmt.Printf("unknown command %q\n", in.Text())
		}
		fmt.Println("end")
	}
}
