// kubestream speaks Kubernetes' streaming protocols over SPDY/3.1 the way
// kubectl and the kubelet do (remote command v4, port forward), through
// moby/spdystream, the SPDY implementation they use. The CRI tests run it
// against lifecycled's streaming server, so that the server is checked by
// a SPDY stack nobody here wrote.
//
//	kubestream exec URL [-stdin] [-tty]    stdin/stdout/stderr are this process's;
//	                                       the remote status goes to fd 3 (JSON)
//	kubestream portforward URL PORT REQ    sends REQ, prints the answer
package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/moby/spdystream"
)

func fail(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "kubestream: "+format+"\n", a...)
	os.Exit(100)
}

// upgrade asks for SPDY/3.1 with the given protocols and returns the
// connection and the protocol the server chose.
func upgrade(raw string, protocols []string) (*spdystream.Connection, string) {
	u, err := url.Parse(raw)
	if err != nil {
		fail("url: %v", err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		fail("dial: %v", err)
	}
	req, _ := http.NewRequest("POST", raw, nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "SPDY/3.1")
	for _, p := range protocols {
		req.Header.Add("X-Stream-Protocol-Version", p)
	}
	if err := req.Write(conn); err != nil {
		fail("request: %v", err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		fail("response: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(resp.Body)
		fmt.Fprintf(os.Stderr, "%d %s", resp.StatusCode, body)
		os.Exit(101)
	}
	if br.Buffered() > 0 {
		fail("data after the upgrade response")
	}
	sc, err := spdystream.NewConnection(conn, false)
	if err != nil {
		fail("spdy: %v", err)
	}
	go sc.Serve(spdystream.NoOpStreamHandler)
	return sc, resp.Header.Get("X-Stream-Protocol-Version")
}

func stream(c *spdystream.Connection, h http.Header) *spdystream.Stream {
	s, err := c.CreateStream(h, nil, false)
	if err != nil {
		fail("create stream %v: %v", h, err)
	}
	if err := s.WaitTimeout(10 * time.Second); err != nil {
		fail("stream %v not answered: %v", h, err)
	}
	return s
}

func typed(t string) http.Header {
	h := http.Header{}
	h.Set("streamType", t)
	return h
}

func exec(raw string, stdin, tty bool) {
	c, proto := upgrade(raw, []string{"v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"})
	if proto != "v4.channel.k8s.io" {
		fail("negotiated %q", proto)
	}
	errStream := stream(c, typed("error"))
	var wg sync.WaitGroup
	if stdin {
		in := stream(c, typed("stdin"))
		go func() {
			io.Copy(in, os.Stdin)
			in.Close()
		}()
	}
	out := stream(c, typed("stdout"))
	wg.Add(1)
	go func() { defer wg.Done(); io.Copy(os.Stdout, out) }()
	if tty {
		resize := stream(c, typed("resize"))
		fmt.Fprint(resize, `{"Width":123,"Height":45}`)
	} else {
		errOut := stream(c, typed("stderr"))
		wg.Add(1)
		go func() { defer wg.Done(); io.Copy(os.Stderr, errOut) }()
	}
	status, err := io.ReadAll(errStream)
	if err != nil {
		fail("error stream: %v", err)
	}
	wg.Wait()
	f := os.NewFile(3, "status")
	if f != nil {
		f.Write(status)
		f.Close()
	}
	c.Close()
}

func portforward(raw, port, request string) {
	c, proto := upgrade(raw, []string{"portforward.k8s.io"})
	if proto != "portforward.k8s.io" {
		fail("negotiated %q", proto)
	}
	h := http.Header{}
	h.Set("streamType", "error")
	h.Set("port", port)
	h.Set("requestID", "0")
	errStream := stream(c, h)
	h = http.Header{}
	h.Set("streamType", "data")
	h.Set("port", port)
	h.Set("requestID", "0")
	data := stream(c, h)
	var msg []byte
	done := make(chan struct{})
	go func() { msg, _ = io.ReadAll(errStream); close(done) }()
	io.WriteString(data, strings.ReplaceAll(request, `\n`, "\n"))
	answer, _ := io.ReadAll(data)
	<-done
	os.Stdout.Write(answer)
	if len(msg) > 0 {
		fmt.Fprintf(os.Stderr, "%s", msg)
		os.Exit(102)
	}
	c.Close()
}

func main() {
	if len(os.Args) < 3 {
		fail("usage: kubestream exec URL [-stdin] [-tty] | portforward URL PORT REQUEST")
	}
	switch os.Args[1] {
	case "exec":
		stdin, tty := false, false
		for _, a := range os.Args[3:] {
			stdin = stdin || a == "-stdin"
			tty = tty || a == "-tty"
		}
		exec(os.Args[2], stdin, tty)
	case "portforward":
		if len(os.Args) != 5 {
			fail("portforward URL PORT REQUEST")
		}
		portforward(os.Args[2], os.Args[3], os.Args[4])
	default:
		fail("unknown command %q", os.Args[1])
	}
}
