// Package porterproto holds what a Porter secrets plugin and a Porter host share: Porter's
// go-plugin handshake config and the go-plugin wrapper around the SecretsProtocol service,
// as Porter's pkg/plugins and pkg/secrets/plugins define them.
package porterproto

import (
	"context"

	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pb "stowage.test/porter/secretsproto"
)

// HandshakeConfig is Porter's: the PORTER magic cookie, protocol version 2 for secrets.
var HandshakeConfig = plugin.HandshakeConfig{
	ProtocolVersion:  2,
	MagicCookieKey:   "PORTER",
	MagicCookieValue: "bbc2dd71-def4-4311-906e-e98dc27208ce",
}

// Interface is the name Porter dispenses secrets plugins under.
const Interface = "secrets"

// SecretsPlugin is the go-plugin plugin for Porter's secrets protocol (gRPC only).
type SecretsPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl pb.SecretsProtocolServer
}

// GRPCServer registers the implementation on the plugin's gRPC server.
func (p *SecretsPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pb.RegisterSecretsProtocolServer(s, p.Impl)
	return nil
}

// GRPCClient gives the host a SecretsProtocol client on the plugin's connection.
func (p *SecretsPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (interface{}, error) {
	return pb.NewSecretsProtocolClient(c), nil
}
