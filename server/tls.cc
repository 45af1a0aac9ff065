#include "server/tls.h"

#include <grpcpp/security/server_credentials.h>
#include <httplib.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "runtime/status_macros.h"
#include "server/log.h"

namespace coreserve {
namespace {

// OpenSSL asks for a passphrase on the terminal when it meets an encrypted key; a daemon must fail instead.
int NoPassphrase(char*, int, int, void*) { return -1; }

std::string OpenSslReason() {
  const unsigned long code = ERR_get_error();  // the oldest error; the rest are context
  ERR_clear_error();
  if (code == 0) return "unknown OpenSSL error";
  char text[256];
  ERR_error_string_n(code, text, sizeof text);
  return text;
}

absl::StatusOr<std::string> ReadPem(const std::string& path, const std::string& key) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return absl::InvalidArgumentError(absl::StrCat(key, ": cannot read '", path, "': ", std::strerror(errno)));
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Deleter {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using X509Ptr = std::unique_ptr<X509, X509Deleter>;

std::unique_ptr<BIO, BioDeleter> MemoryBio(const std::string& pem) {
  return std::unique_ptr<BIO, BioDeleter>(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

// Every certificate in `pem`, in order; an error when there is none.
absl::StatusOr<std::vector<X509Ptr>> ParseCertificates(const std::string& pem, const std::string& key) {
  auto bio = MemoryBio(pem);
  std::vector<X509Ptr> certs;
  while (X509* x = PEM_read_bio_X509(bio.get(), nullptr, NoPassphrase, nullptr)) certs.emplace_back(x);
  ERR_clear_error();  // the loop ends on "no start line", which is not an error here
  if (certs.empty()) return absl::InvalidArgumentError(absl::StrCat(key, ": no PEM certificate in the file"));
  return certs;
}

void WarnOutsideValidity(X509* cert, const std::string& key) {
  if (X509_cmp_current_time(X509_get0_notAfter(cert)) < 0) {
    LOG_WARNING(key, ": the certificate has expired; clients will refuse it");
  } else if (X509_cmp_current_time(X509_get0_notBefore(cert)) > 0) {
    LOG_WARNING(key, ": the certificate is not valid yet (is this host's clock right?)");
  }
}

}  // namespace

absl::StatusOr<TlsMaterial> LoadTls(const TlsConfig& tls, const std::string& key) {
  const std::string cert_key = key + ".tls.cert_file", key_key = key + ".tls.key_file",
                    ca_key = key + ".tls.client_ca_file";
  TlsMaterial m;
  ASSIGN_OR_RETURN(m.cert_pem, ReadPem(tls.cert_file, cert_key));
  ASSIGN_OR_RETURN(m.key_pem, ReadPem(tls.key_file, key_key));
  ASSIGN_OR_RETURN(std::vector<X509Ptr> chain, ParseCertificates(m.cert_pem, cert_key));
  auto key_bio = MemoryBio(m.key_pem);
  std::unique_ptr<EVP_PKEY, KeyDeleter> pkey(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, NoPassphrase, nullptr));
  if (pkey == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(key_key, ": not an unencrypted PEM private key (",
                                                   OpenSslReason(), ")"));
  }
  if (X509_check_private_key(chain.front().get(), pkey.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        absl::StrCat(key_key, ": the key does not belong to the first certificate of ", cert_key));
  }
  WarnOutsideValidity(chain.front().get(), cert_key);
  if (!tls.client_ca_file.empty()) {
    ASSIGN_OR_RETURN(m.client_ca_pem, ReadPem(tls.client_ca_file, ca_key));
    RETURN_IF_ERROR(ParseCertificates(m.client_ca_pem, ca_key).status());
  }
  return m;
}

absl::StatusOr<std::unique_ptr<httplib::Server>> MakeHttpServer(const ListenerConfig& listener,
                                                                const std::string& key) {
  if (!listener.tls.enabled()) return std::make_unique<httplib::Server>();
  RETURN_IF_ERROR(LoadTls(listener.tls, key).status());
  const TlsConfig& tls = listener.tls;
  std::string failure;
  // The files were checked above; this configures OpenSSL from them and keeps its reason if that still fails.
  auto server = std::make_unique<httplib::SSLServer>([&tls, &failure](SSL_CTX& ctx) {
    SSL_CTX_set_default_passwd_cb(&ctx, NoPassphrase);
    SSL_CTX_set_options(&ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    const bool ok = SSL_CTX_set_min_proto_version(&ctx, TLS1_2_VERSION) == 1 &&
                    SSL_CTX_use_certificate_chain_file(&ctx, tls.cert_file.c_str()) == 1 &&
                    SSL_CTX_use_PrivateKey_file(&ctx, tls.key_file.c_str(), SSL_FILETYPE_PEM) == 1 &&
                    SSL_CTX_check_private_key(&ctx) == 1;
    if (!ok) {
      failure = OpenSslReason();
      return false;
    }
    if (!tls.client_ca_file.empty()) {
      STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(tls.client_ca_file.c_str());
      if (names == nullptr || SSL_CTX_load_verify_locations(&ctx, tls.client_ca_file.c_str(), nullptr) != 1) {
        if (names != nullptr) sk_X509_NAME_pop_free(names, X509_NAME_free);
        failure = OpenSslReason();
        return false;
      }
      SSL_CTX_set_client_CA_list(&ctx, names);  // takes ownership
      SSL_CTX_set_verify(&ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    }
    return true;
  });
  if (!server->is_valid()) {
    return absl::InvalidArgumentError(absl::StrCat(key, ".tls: OpenSSL refused the certificate or key: ", failure));
  }
  return server;
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeGrpcCredentials(const ListenerConfig& listener,
                                                                            const std::string& key) {
  if (!listener.tls.enabled()) return grpc::InsecureServerCredentials();
  ASSIGN_OR_RETURN(TlsMaterial m, LoadTls(listener.tls, key));
  grpc::SslServerCredentialsOptions options(m.client_ca_pem.empty()
                                                ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                                : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  options.pem_root_certs = m.client_ca_pem;
  options.pem_key_cert_pairs.push_back({m.key_pem, m.cert_pem});
  return grpc::SslServerCredentials(options);
}

}  // namespace coreserve
