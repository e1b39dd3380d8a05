// A small HTTP/1.1 server on 127.0.0.1 for tests of pgmtls's HTTP clients: plain or TLS, one
// thread, every request recorded and answered by a handler the test supplies. It plays the AWS
// services the credential providers talk to (IMDS, the ECS / EKS agents, STS); the wire formats
// are up to the handler.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace pgmtls::integration {

struct MockHttpRequest {
  std::string method;
  std::string target;                          // path and query
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;

  std::optional<std::string> header(const std::string& lower_case_name) const;
  // The value of `name` in an application/x-www-form-urlencoded body (or query), decoded.
  std::optional<std::string> form_value(const std::string& name) const;
};

struct MockHttpResponse {
  MockHttpResponse() = default;
  MockHttpResponse(int status_, std::string body_, std::string content_type_ = "application/json")
      : status(status_), body(std::move(body_)), content_type(std::move(content_type_)) {}
  static MockHttpResponse held();  // a stalled server, until release()
  static MockHttpResponse held(MockHttpResponse response);
  static MockHttpResponse raw_bytes(std::string bytes);

  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  // Answer only when release() is called; a server never released is a stalled one.
  bool hold = false;
  // Written verbatim instead of an HTTP response, then the connection is closed.
  std::optional<std::string> raw;
};

class MockHttpServer {
 public:
  using Handler = std::function<MockHttpResponse(const MockHttpRequest&)>;

  // Plain HTTP.
  explicit MockHttpServer(Handler handler);
  // HTTPS with this certificate chain and key (PEM files).
  MockHttpServer(Handler handler, const std::string& cert_file, const std::string& key_file);
  MockHttpServer(const MockHttpServer&) = delete;
  MockHttpServer& operator=(const MockHttpServer&) = delete;
  ~MockHttpServer();  // stops and joins; held and stalled connections are closed

  std::uint16_t port() const { return port_; }
  // "http://127.0.0.1:PORT" or "https://127.0.0.1:PORT".
  std::string url() const;

  void set_handler(Handler handler);
  std::vector<MockHttpRequest> requests() const;
  std::size_t request_count() const;
  // Waits until at least `n` requests have arrived; false if `timeout` passes first.
  bool wait_for_requests(std::size_t n, std::chrono::milliseconds timeout) const;
  // Sends every held response, and those held later too.
  void release();

  struct State;

 private:
  std::shared_ptr<State> state_;
  std::uint16_t port_ = 0;
  bool tls_ = false;
  std::thread thread_;
};

}  // namespace pgmtls::integration
