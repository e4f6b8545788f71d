// porter-host-fixture launches a Porter secrets plugin the way Porter does, with
// hashicorp/go-plugin's client: the PORTER cookie and protocol version 2 in the environment,
// the plugin config as JSON on the plugin's stdin (then EOF), the handshake line, a gRPC
// connection, a health check, then Resolve/Create calls, then Kill (GRPCController/Shutdown,
// then up to 2s for the plugin to exit).
//
//	porter-host-fixture -plugin PATH -key secrets.stowage.BACKEND -config '{"…"}' OP…
//
// OP is resolve:NAME, resolve-source:KIND:NAME or create:NAME=VALUE. One JSON line per
// event goes to stdout: {"event":"started","pid":…,"network":…,"address":…}, one
// {"op":…,"key":…,"value":…} or {"op":…,"key":…,"error":…} per OP, then
// {"event":"stopped","exited":true}.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"

	hclog "github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"

	"stowage.test/porter/porterproto"
	pb "stowage.test/porter/secretsproto"
)

func emit(v map[string]interface{}) {
	b, _ := json.Marshal(v)
	fmt.Println(string(b))
}

func fail(format string, args ...interface{}) {
	emit(map[string]interface{}{"event": "failed", "error": fmt.Sprintf(format, args...)})
	os.Exit(1)
}

func main() {
	path := flag.String("plugin", "", "the plugin binary")
	key := flag.String("key", "", "the plugin key, such as secrets.stowage.filesystem")
	config := flag.String("config", "", "the plugin's config as JSON, written to its stdin")
	flag.Parse()

	// Porter hands the plugin its config on stdin and closes it. go-plugin 1.0.1 (Debian)
	// wires the plugin's stdin to the host's os.Stdin, so make that a pipe holding the
	// config and nothing else; Porter's fork takes the reader directly.
	r, w, err := os.Pipe()
	if err != nil {
		fail("pipe: %v", err)
	}
	if _, err := w.Write([]byte(*config)); err != nil {
		fail("writing the config: %v", err)
	}
	w.Close()
	os.Stdin = r

	logger := hclog.New(&hclog.LoggerOptions{
		Name:       "porter",
		Output:     os.Stderr,
		Level:      hclog.Debug,
		JSONFormat: true,
	})
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  porterproto.HandshakeConfig,
		Plugins:          map[string]plugin.Plugin{porterproto.Interface: &porterproto.SecretsPlugin{}},
		Cmd:              exec.Command(*path, "run", *key),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           logger,
	})
	rpc, err := client.Client()
	if err != nil {
		client.Kill()
		fail("could not connect to the %s plugin: %v", *key, err)
	}
	// The health check go-plugin makes (grpc.health.v1, service "plugin").
	if err := rpc.Ping(); err != nil {
		client.Kill()
		fail("health check: %v", err)
	}
	raw, err := rpc.Dispense(porterproto.Interface)
	if err != nil {
		client.Kill()
		fail("dispense: %v", err)
	}
	secrets := raw.(pb.SecretsProtocolClient)
	rc := client.ReattachConfig()
	emit(map[string]interface{}{
		"event": "started", "pid": rc.Pid, "network": rc.Addr.Network(), "address": rc.Addr.String(),
		"protocol_version": client.NegotiatedVersion(),
	})

	ctx := context.Background()
	for _, op := range flag.Args() {
		switch {
		case strings.HasPrefix(op, "resolve:"):
			name := strings.TrimPrefix(op, "resolve:")
			resp, err := secrets.Resolve(ctx, &pb.ResolveRequest{KeyName: "secret", KeyValue: name})
			report("resolve", name, resp, err)
		case strings.HasPrefix(op, "resolve-source:"):
			parts := strings.SplitN(strings.TrimPrefix(op, "resolve-source:"), ":", 2)
			resp, err := secrets.Resolve(ctx, &pb.ResolveRequest{KeyName: parts[0], KeyValue: parts[1]})
			report("resolve-source", parts[1], resp, err)
		case strings.HasPrefix(op, "create:"):
			kv := strings.SplitN(strings.TrimPrefix(op, "create:"), "=", 2)
			_, err := secrets.Create(ctx, &pb.CreateRequest{KeyName: "secret", KeyValue: kv[0], Value: kv[1]})
			report("create", kv[0], nil, err)
		default:
			client.Kill()
			fail("unknown op %q", op)
		}
	}
	client.Kill()
	emit(map[string]interface{}{"event": "stopped", "exited": client.Exited()})
}

func report(op, key string, resp *pb.ResolveResponse, err error) {
	out := map[string]interface{}{"op": op, "key": key}
	if err != nil {
		out["error"] = err.Error()
	} else if resp != nil {
		out["value"] = resp.Value
	}
	emit(out)
}
