// TLS for the listeners: checks a listener's certificate, key and client CAs once at start, with errors that
// name the config key and the reason, then builds what each protocol library needs from them. Both HTTP
// (cpp-httplib over OpenSSL) and gRPC accept TLS 1.2 and later only.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/config.h"

namespace grpc {
class ServerCredentials;
}
namespace httplib {
class Server;
}

namespace coreserve {

// The PEM files of a listener's TLS, read and checked: the key matches the certificate, each file parses.
struct TlsMaterial {
  std::string cert_pem, key_pem, client_ca_pem;  // client_ca_pem empty: no client certificates asked for
};

// Reads and checks `tls`; `key` names the listener in errors ("http" gives "http.tls.key_file: ...").
// A certificate outside its validity period is logged as a warning, not refused (clocks on fresh hosts lag).
absl::StatusOr<TlsMaterial> LoadTls(const TlsConfig& tls, const std::string& key);

// An httplib server for `listener`: HTTPS when its tls is set (checked by LoadTls first), else plain HTTP.
absl::StatusOr<std::unique_ptr<httplib::Server>> MakeHttpServer(const ListenerConfig& listener,
                                                                const std::string& key);

// gRPC credentials for `listener`: TLS (with client certificates required when client_ca_file is set) or
// insecure.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeGrpcCredentials(const ListenerConfig& listener,
                                                                            const std::string& key);

}  // namespace coreserve
