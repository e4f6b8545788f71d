// porter-secrets-fixture is a Porter secrets plugin built the way Porter's plugins are:
// hashicorp/go-plugin over gRPC, config JSON read from stdin to EOF before serving, hclog
// JSON logs on stderr. It keeps secrets as files in the directory its config names, and can
// misbehave on request (config "fault") so that tests can see how a host copes.
//
//	porter-secrets-fixture run secrets.fixture.disk      (as Porter runs it)
//	porter-secrets-fixture version --output json
package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/ioutil"
	"os"
	"path/filepath"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"

	"stowage.test/porter/porterproto"
	pb "stowage.test/porter/secretsproto"
)

const key = "secrets.fixture.disk"

type config struct {
	// Dir holds one file per secret, named by the hex of its key.
	Dir string `json:"dir"`
	// Fault: "crash-on-resolve", "hang-on-resolve", "exit-at-start", "binary-value".
	Fault string `json:"fault"`
	// PidFile gets this process's pid appended at start.
	PidFile string `json:"pid-file"`
	// Log is logged at warn level on every call.
	Log string `json:"log"`
}

type store struct {
	cfg    config
	logger hclog.Logger
}

func (s *store) path(name string) string {
	return filepath.Join(s.cfg.Dir, hex.EncodeToString([]byte(name)))
}

func (s *store) Resolve(_ context.Context, req *pb.ResolveRequest) (*pb.ResolveResponse, error) {
	if s.cfg.Log != "" {
		s.logger.Warn(s.cfg.Log, "op", "resolve", "key", req.KeyValue)
	}
	switch s.cfg.Fault {
	case "crash-on-resolve":
		s.logger.Error("fixture crashing as asked", "key", req.KeyValue)
		os.Exit(3)
	case "hang-on-resolve":
		s.logger.Info("fixture hanging as asked", "key", req.KeyValue)
		time.Sleep(time.Hour)
	case "binary-value":
		return &pb.ResolveResponse{Value: string([]byte{0xff, 0xfe, 0x00})}, nil
	}
	// Porter's plugins resolve host sources themselves; this one knows `value`.
	if req.KeyName == "value" {
		return &pb.ResolveResponse{Value: req.KeyValue}, nil
	}
	if req.KeyName != "secret" {
		return nil, fmt.Errorf("unsupported key name: %s", req.KeyName)
	}
	data, err := ioutil.ReadFile(s.path(req.KeyValue))
	if err != nil {
		// As Porter's filesystem plugin words it: the text says "no such file or directory".
		return nil, fmt.Errorf("error reading secret from filesystem: %w", err)
	}
	return &pb.ResolveResponse{Value: string(data)}, nil
}

func (s *store) Create(_ context.Context, req *pb.CreateRequest) (*pb.CreateResponse, error) {
	if s.cfg.Log != "" {
		s.logger.Warn(s.cfg.Log, "op", "create", "key", req.KeyValue)
	}
	if req.KeyName != "secret" {
		return nil, fmt.Errorf("invalid key name: %s", req.KeyName)
	}
	tmp := s.path(req.KeyValue) + ".tmp"
	if err := ioutil.WriteFile(tmp, []byte(req.Value), 0600); err != nil {
		return nil, fmt.Errorf("failed to create key: %s: %w", req.KeyValue, err)
	}
	if err := os.Rename(tmp, s.path(req.KeyValue)); err != nil {
		return nil, fmt.Errorf("failed to create key: %s: %w", req.KeyValue, err)
	}
	return &pb.CreateResponse{}, nil
}

func main() {
	if len(os.Args) >= 2 && os.Args[1] == "version" {
		fmt.Printf(`{"name":"fixture","version":"v0.0.1","commit":"","author":"Stowage tests","implementations":[{"type":"secrets","implementation":"disk"}]}` + "\n")
		return
	}
	if len(os.Args) != 3 || os.Args[1] != "run" {
		fmt.Fprintln(os.Stderr, "usage: porter-secrets-fixture run "+key)
		os.Exit(2)
	}
	if os.Args[2] != key {
		fmt.Fprintf(os.Stderr, "unknown plugin key %q; this plugin implements %s\n", os.Args[2], key)
		os.Exit(1)
	}
	logger := hclog.New(&hclog.LoggerOptions{
		Name:       "fixture",
		Output:     os.Stderr,
		Level:      hclog.Debug,
		JSONFormat: true,
	})
	// Porter writes the config to stdin and closes it: read to EOF before serving.
	raw, err := ioutil.ReadAll(os.Stdin)
	if err != nil {
		logger.Error("cannot read the config from stdin", "error", err)
		os.Exit(1)
	}
	var cfg config
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &cfg); err != nil {
			logger.Error("invalid config", "error", err)
			os.Exit(1)
		}
	}
	if cfg.PidFile != "" {
		f, err := os.OpenFile(cfg.PidFile, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0600)
		if err == nil {
			fmt.Fprintf(f, "%d\n", os.Getpid())
			f.Close()
		}
	}
	if cfg.Fault == "exit-at-start" {
		fmt.Fprintln(os.Stderr, "fixture: cannot start: the vault refused our credentials")
		os.Exit(1)
	}
	if cfg.Dir == "" {
		logger.Error("config key dir is required")
		os.Exit(1)
	}
	logger.Debug("serving", "dir", cfg.Dir)
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: porterproto.HandshakeConfig,
		Plugins: map[string]plugin.Plugin{
			porterproto.Interface: &porterproto.SecretsPlugin{Impl: &store{cfg: cfg, logger: logger}},
		},
		GRPCServer: plugin.DefaultGRPCServer,
		Logger:     logger,
	})
}
