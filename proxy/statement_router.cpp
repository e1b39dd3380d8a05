#include "proxy/statement_router.h"

#include <openssl/evp.h>

#include <algorithm>
#include <string_view>

#include "protocol/builders.h"
#include "protocol/frontend.h"
#include "protocol/session_features.h"

namespace pgmtls::proxy {

namespace ft = protocol::frontend_type;

namespace {

// The whole message as it came.
void append_raw(std::vector<std::uint8_t>& out, const protocol::Message& m) {
  const auto* begin = m.payload.data() - 5;
  out.insert(out.end(), begin, begin + m.size);
}

}  // namespace

std::string StatementRouter::server_name(std::string_view query, protocol::Bytes parameter_types) {
  // SHA-256 rather than a faster hash: two queries with one name would run each other's text.
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  EVP_DigestUpdate(ctx, query.data(), query.size());
  static constexpr unsigned char kSeparator = 0;  // a query text has no NUL
  EVP_DigestUpdate(ctx, &kSeparator, 1);
  EVP_DigestUpdate(ctx, parameter_types.data(), parameter_types.size());
  EVP_DigestFinal_ex(ctx, digest, &size);
  EVP_MD_CTX_free(ctx);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string name = "pgmtls_";
  for (unsigned i = 0; i < 24; ++i) {  // 192 bits; the name stays within NAMEDATALEN
    name.push_back(kHex[digest[i] >> 4]);
    name.push_back(kHex[digest[i] & 15]);
  }
  return name;
}

void StatementRouter::attach(BackendStatements& backend) {
  backend_ = &backend;
  events_.clear();
  sent_segments_ = 0;
  done_segments_ = 0;
  have_ = 0;
  remaining_ = 0;
  mode_ = Mode::forward;
  broken_ = false;
}

void StatementRouter::detach() {
  backend_ = nullptr;
}

bool StatementRouter::rewrites(char type) {
  return type == ft::kParse || type == ft::kBind || type == ft::kDescribe || type == ft::kClose ||
         type == ft::kQuery;
}

void StatementRouter::passthrough(char type) {
  if (type == ft::kSync || type == ft::kFunctionCall) ++sent_segments_;
}

void StatementRouter::send_close(std::vector<std::uint8_t>& out, std::string_view name,
                                 Event event) {
  protocol::append_target(out, ft::kClose, 'S', name);
  event.expect = '3';
  event.segment = sent_segments_;
  events_.push_back(std::move(event));
}

void StatementRouter::touch(BackendStatements::Entry& entry) {
  backend_->lru.splice(backend_->lru.begin(), backend_->lru, entry.lru);
}

void StatementRouter::make_room(std::vector<std::uint8_t>& out) {
  while (backend_->names.size() >= max_prepared_ && !backend_->lru.empty()) {
    const std::string victim = backend_->lru.back();
    auto it = backend_->names.find(victim);
    // One this segment relies on stays: the connection holds one more for a while.
    if (it->second.state == BackendStatements::State::pending &&
        it->second.segment == sent_segments_) {
      break;
    }
    backend_->lru.pop_back();
    backend_->names.erase(it);
    send_close(out, victim, {.action = Event::Action::swallow, .closes = victim});
  }
}

void StatementRouter::ensure(const ClientStatement& statement, std::vector<std::uint8_t>& out) {
  using State = BackendStatements::State;
  auto& names = backend_->names;
  const auto& name = statement.server_name;
  auto it = names.find(name);
  bool was_uncertain = false;
  if (it != names.end()) {
    auto& entry = it->second;
    touch(entry);
    if (entry.state == State::prepared ||
        (entry.state == State::pending && entry.segment == sent_segments_)) {
      return;
    }
    // Its Parse is in an earlier segment that may still fail, or nobody knows: close it (a
    // Close of a statement that is not there is no error) and prepare it again.
    send_close(out, name, {.action = Event::Action::swallow});
    entry.state = State::pending;
    entry.segment = sent_segments_;
    was_uncertain = true;
  } else {
    make_room(out);
    backend_->lru.push_front(name);
    names.emplace(name,
                  BackendStatements::Entry{State::pending, sent_segments_, backend_->lru.begin()});
  }
  out.insert(out.end(), statement.parse.begin(), statement.parse.end());
  events_.push_back({.expect = '1',
                     .action = Event::Action::swallow,
                     .segment = sent_segments_,
                     .prepares = name,
                     .was_uncertain = was_uncertain});
}

void StatementRouter::ensure_unnamed(std::vector<std::uint8_t>& out) {
  const std::pair owner{session_id_, unnamed_generation_};
  if (unnamed_.empty()) {
    // The client has no unnamed statement; whatever another client left there must not run.
    send_close(out, "", {.action = Event::Action::swallow});
    backend_->unnamed_owner.reset();
    return;
  }
  if (backend_->unnamed_owner == owner) return;
  out.insert(out.end(), unnamed_.begin(), unnamed_.end());
  backend_->unnamed_owner = owner;
  events_.push_back({.expect = '1',
                     .action = Event::Action::swallow,
                     .segment = sent_segments_,
                     .prepares_unnamed = true});
}

void StatementRouter::refuse(std::string_view feature, std::vector<std::uint8_t>& out) {
  const std::string message =
      std::string(feature) + " is not supported with pool_mode: transaction";
  fail(protocol::error_response(
           {.severity = "ERROR",
            .sqlstate = "0A000",
            .message = message,
            .detail = "pgmtls hands this backend connection to other clients between "
                      "transactions, so session state would reach them.",
            .hint = "Keep settings inside a transaction (SET LOCAL), set them per role or in the "
                    "connection's options, or use pool_mode: session."}),
       out);
}

void StatementRouter::fail(std::vector<std::uint8_t> error, std::vector<std::uint8_t>& out) {
  protocol::append_bind(out, "", kNoStatement);
  events_.push_back({.expect = 'E',
                     .action = Event::Action::replace_error,
                     .segment = sent_segments_,
                     .error = std::move(error)});
}

void StatementRouter::client_message(const protocol::Message& m, std::vector<std::uint8_t>& out) {
  switch (m.type) {
    case ft::kParse: {
      const auto fields = protocol::parse_fields(m);
      if (!fields) {
        // The backend rejects it, and the error skips the segment (and this event).
        append_raw(out, m);
        events_.push_back(
            {.expect = '1', .action = Event::Action::forward, .segment = sent_segments_});
        return;
      }
      if (const auto feature = protocol::session_feature(fields->query); !feature.empty()) {
        if (fields->statement.empty()) unnamed_.clear();  // as a failed Parse does
        refuse(feature, out);
        return;
      }
      if (fields->statement.empty()) {
        unnamed_.assign(m.payload.data() - 5, m.payload.data() - 5 + m.size);
        ++unnamed_generation_;
        backend_->unnamed_owner = std::pair{session_id_, unnamed_generation_};
        append_raw(out, m);
        events_.push_back({.expect = '1',
                           .action = Event::Action::forward,
                           .segment = sent_segments_,
                           .prepares_unnamed = true});
        return;
      }
      // A name in use is the client's error, as from PostgreSQL. While the Parse that took it
      // is unanswered, nobody knows yet: the new one replaces it (if both succeed the client
      // has no error where PostgreSQL would give one; it cannot tell which text runs anyway).
      if (auto it = statements_.find(std::string(fields->statement));
          it != statements_.end() && it->second.confirmed) {
        const std::string message =
            "prepared statement \"" + std::string(fields->statement) + "\" already exists";
        fail(protocol::error_response(
                 {.severity = "ERROR", .sqlstate = "42P05", .message = message}),
             out);
        return;
      }
      ClientStatement statement{
          server_name(fields->query, fields->parameter_types), {}, ++parse_generation_, false};
      protocol::append_parse(statement.parse, statement.server_name, fields->query,
                             fields->parameter_types);
      const auto& stored = statements_[std::string(fields->statement)] = std::move(statement);
      // The client expects a ParseComplete: from the Parse if one goes out, else from a Close
      // of nothing, in the same place.
      const std::size_t before = events_.size();
      ensure(stored, out);
      if (events_.size() > before && events_.back().expect == '1') {
        events_.back().action = Event::Action::forward;
      } else {
        send_close(out, kNoStatement, {.action = Event::Action::as_parse_complete});
      }
      events_.back().client_statement = fields->statement;
      events_.back().client_generation = stored.generation;
      return;
    }
    case ft::kBind: {
      const auto fields = protocol::bind_fields(m);
      if (fields && fields->statement.empty()) {
        ensure_unnamed(out);
      } else if (fields) {
        auto it = statements_.find(std::string(fields->statement));
        if (it != statements_.end()) {
          ensure(it->second, out);
          protocol::append_bind(out, fields->portal, it->second.server_name, fields->rest);
          return;
        }
      }
      append_raw(out, m);  // the backend answers an unknown statement with PostgreSQL's error
      return;
    }
    case ft::kDescribe:
    case ft::kClose: {
      const auto target = protocol::target_fields(m);
      const bool close = m.type == ft::kClose;
      if (target && target->kind == 'S' && !target->name.empty()) {
        auto it = statements_.find(std::string(target->name));
        if (close) {
          // Other clients may use the server-side statement: it stays, LRU closes it one day.
          if (it != statements_.end()) statements_.erase(it);
          send_close(out, kNoStatement, {.action = Event::Action::forward});
          return;
        }
        if (it != statements_.end()) {
          ensure(it->second, out);
          protocol::append_target(out, ft::kDescribe, 'S', it->second.server_name);
          return;
        }
      } else if (target && target->kind == 'S') {
        if (close) {
          unnamed_.clear();
          send_close(out, "", {.action = Event::Action::forward});
          backend_->unnamed_owner.reset();
          return;
        }
        ensure_unnamed(out);
      }
      append_raw(out, m);
      if (close) {
        events_.push_back(
            {.expect = '3', .action = Event::Action::forward, .segment = sent_segments_});
      }
      return;
    }
    case ft::kQuery: {
      const auto text = protocol::query_text(m);
      if (text) {
        if (const auto feature = protocol::session_feature(*text); !feature.empty()) {
          refuse(feature, out);
          protocol::append_sync(out);
          ++sent_segments_;
          unnamed_.clear();
          return;
        }
      }
      // A simple Query destroys the unnamed statement.
      unnamed_.clear();
      backend_->unnamed_owner.reset();
      append_raw(out, m);
      ++sent_segments_;
      return;
    }
    default:
      append_raw(out, m);
      passthrough(m.type);
  }
}

// ---- the backend's side ----

void StatementRouter::backend_bytes(protocol::Bytes chunk, std::vector<std::uint8_t>& out) {
  std::size_t i = 0;
  while (i < chunk.size()) {
    if (remaining_ > 0) {
      const auto n =
          static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, chunk.size() - i));
      if (mode_ == Mode::forward) {
        out.insert(out.end(), chunk.begin() + i, chunk.begin() + i + n);
      } else if (mode_ == Mode::buffer) {
        error_buf_.insert(error_buf_.end(), chunk.begin() + i, chunk.begin() + i + n);
      }
      i += n;
      remaining_ -= n;
      if (remaining_ == 0 && mode_ == Mode::buffer) on_error_buffered(out);
      continue;
    }
    const std::size_t n = std::min<std::size_t>(5 - have_, chunk.size() - i);
    std::copy_n(chunk.begin() + i, n, header_ + have_);
    have_ += n;
    i += n;
    if (have_ < 5) break;
    have_ = 0;
    const std::uint32_t length = protocol::read_u32(header_ + 1);
    if (length < 4) {
      // Unfollowable: pass the rest through untouched; the session closes the connection.
      broken_ = true;
      out.insert(out.end(), header_, header_ + 5);
      out.insert(out.end(), chunk.begin() + i, chunk.end());
      return;
    }
    remaining_ = length - 4;
    mode_ = Mode::forward;
    on_header(static_cast<char>(header_[0]), out);
    if (remaining_ == 0 && mode_ == Mode::buffer) on_error_buffered(out);
  }
}

void StatementRouter::on_header(char type, std::vector<std::uint8_t>& out) {
  const auto forward_header = [&] { out.insert(out.end(), header_, header_ + 5); };
  switch (type) {
    case '1':
    case '3': {
      if (events_.empty() || events_.front().expect != type) {
        broken_ = true;
        forward_header();
        return;
      }
      const Event event = std::move(events_.front());
      events_.pop_front();
      confirm(event);
      if (event.action == Event::Action::forward) {
        forward_header();
      } else if (event.action == Event::Action::as_parse_complete) {
        static constexpr std::uint8_t kParseComplete[] = {'1', 0, 0, 0, 4};
        out.insert(out.end(), kParseComplete, kParseComplete + 5);
      } else {
        mode_ = Mode::skip;
      }
      return;
    }
    case 'E':
      if (!events_.empty() && events_.front().expect == 'E' &&
          events_.front().segment == done_segments_ && remaining_ <= 65536) {
        mode_ = Mode::buffer;
        error_buf_.assign(header_, header_ + 5);
        return;
      }
      forward_header();
      abort_segment();
      return;
    case 'Z':
      ++done_segments_;
      forward_header();
      while (!events_.empty() && events_.front().segment < done_segments_) {
        drop(events_.front());
        events_.pop_front();
      }
      return;
    default:
      forward_header();
  }
}

void StatementRouter::on_error_buffered(std::vector<std::uint8_t>& out) {
  mode_ = Mode::forward;
  auto fields = protocol::parse_error_fields(protocol::Bytes(error_buf_).subspan(5));
  // Ours only if it is the error of the Bind that stands for the refused command; an earlier
  // error of the segment skipped that Bind, and is the one the client must see.
  if (fields['C'] == "26000" && fields['M'].find(kNoStatement) != std::string::npos) {
    out.insert(out.end(), events_.front().error.begin(), events_.front().error.end());
    events_.pop_front();
  } else {
    out.insert(out.end(), error_buf_.begin(), error_buf_.end());
  }
  error_buf_.clear();
  abort_segment();
}

StatementRouter::ClientStatements::iterator StatementRouter::parsed_by(const Event& event) {
  if (event.client_statement.empty()) return statements_.end();
  auto it = statements_.find(event.client_statement);
  if (it != statements_.end() && it->second.generation != event.client_generation) {
    return statements_.end();
  }
  return it;
}

void StatementRouter::confirm(const Event& event) {
  if (auto it = parsed_by(event); it != statements_.end()) it->second.confirmed = true;
  if (event.prepares.empty()) return;
  auto it = backend_->names.find(event.prepares);
  if (it != backend_->names.end() && it->second.state == BackendStatements::State::pending &&
      it->second.segment == event.segment) {
    it->second.state = BackendStatements::State::prepared;
  }
}

void StatementRouter::drop(const Event& event) {
  using State = BackendStatements::State;
  auto& names = backend_->names;
  // The client's Parse failed or was skipped: it has no such statement.
  if (auto it = parsed_by(event); it != statements_.end()) statements_.erase(it);
  if (!event.prepares.empty()) {
    auto it = names.find(event.prepares);
    if (it != names.end() && it->second.state == State::pending &&
        it->second.segment == event.segment) {
      if (event.was_uncertain) {
        it->second.state = State::uncertain;
      } else {
        backend_->lru.erase(it->second.lru);
        names.erase(it);
      }
    }
  }
  if (!event.closes.empty() && !names.contains(event.closes)) {
    // The eviction did not happen: the statement may still be there.
    backend_->lru.push_back(event.closes);
    names.emplace(event.closes,
                  BackendStatements::Entry{State::uncertain, 0, std::prev(backend_->lru.end())});
  }
  if (event.prepares_unnamed && backend_->unnamed_owner &&
      backend_->unnamed_owner->first == session_id_) {
    backend_->unnamed_owner.reset();
  }
}

void StatementRouter::abort_segment() {
  while (!events_.empty() && events_.front().segment == done_segments_) {
    drop(events_.front());
    events_.pop_front();
  }
}

}  // namespace pgmtls::proxy
