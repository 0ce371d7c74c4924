import Foundation
import Ledger

/// A reflog expiry time as git writes it (`gc.reflogExpire`, `reflog expire --expire=…`).
public enum ExpiryTime: Equatable, Sendable, CustomStringConvertible {
    /// Keep every entry: `never`, `false`.
    case never
    /// Every entry, however recent: `now`, `all`.
    case all
    /// Entries before this unix time.
    case before(Int64)

    /// Parses `never`/`false`, `now`/`all`, `yesterday` (a day ago), an age (`90.days`, `2.weeks.ago`, `3 hours ago`; units
    /// second, minute, hour, day, week, month = 30 days, year = 365 days; one reaching before
    /// 1970 is `never`), `@UNIX`, or a UTC date `YYYY-MM-DD[THH:MM[:SS]][Z]` (also with a space before
    /// the time). Nil when it is none of them.
    public init?(_ text: String, now: Int64) {
        let t = text.trimmingCharacters(in: .whitespaces).lowercased()
        switch t {
        case "never", "false": self = .never; return
        case "now", "all": self = .all; return
        case "yesterday": self = .before(now - 86400); return   // as git's approxidate: this time a day ago
        default: break
        }
        if t.hasPrefix("@"), let n = Self.number(t.dropFirst()) { self = .before(n); return }
        if let seconds = Self.age(t) {
            // An age reaching before 1970 (or past Int64's range) keeps every entry.
            let (d, overflow) = now.subtractingReportingOverflow(seconds)
            self = overflow || seconds == Int64.max || d < 0 ? .never : .before(d)
            return
        }
        if let date = Self.date(t) { self = .before(date); return }
        return nil
    }

    /// Decimal digits only (no sign), as a non-negative number.
    private static func number<S: StringProtocol>(_ s: S) -> Int64? {
        guard !s.isEmpty, s.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return Int64(s)
    }

    /// `N.unit[s][.ago]` or `N unit[s] [ago]` in seconds.
    private static func age(_ t: String) -> Int64? {
        var words = t.split(whereSeparator: { $0 == "." || $0 == " " }).map(String.init)
        if words.last == "ago" { words.removeLast() }
        guard words.count == 2, let n = number(words[0]) else { return nil }
        var unit = words[1]
        if unit.count > 1, unit.hasSuffix("s") { unit.removeLast() }
        let units: [String: Int64] = ["second": 1, "sec": 1, "minute": 60, "min": 60, "hour": 3600, "day": 86400,
                                      "week": 7 * 86400, "month": 30 * 86400, "year": 365 * 86400]
        guard let u = units[unit] else { return nil }
        let (s, overflow) = n.multipliedReportingOverflow(by: u)
        return overflow ? Int64.max : s
    }

    /// `YYYY-MM-DD[( |T)HH:MM[:SS]][z]`, UTC.
    private static func date(_ t: String) -> Int64? {
        var s = Substring(t)
        if s.hasSuffix("z") { s = s.dropLast() }
        let parts = s.split(omittingEmptySubsequences: false, whereSeparator: { $0 == " " || $0 == "t" })
        guard parts.count == 1 || parts.count == 2 else { return nil }
        let pieces = parts[0].split(separator: "-", omittingEmptySubsequences: false)
        guard pieces.count == 3, pieces.map(\.count) == [4, 2, 2] else { return nil }
        let ymd = pieces.map { number($0).map(Int.init) }
        guard let y = ymd[0], let m = ymd[1], let d = ymd[2], (1...12).contains(m), (1...31).contains(d) else { return nil }
        var hms = [0, 0, 0]
        if parts.count == 2 {
            let f = parts[1].split(separator: ":", omittingEmptySubsequences: false)
            guard f.count == 2 || f.count == 3, f.allSatisfy({ $0.count == 2 && number($0) != nil }) else { return nil }
            for (i, v) in f.enumerated() { hms[i] = Int(v)! }
            guard (0...23).contains(hms[0]), (0...59).contains(hms[1]), (0...59).contains(hms[2]) else { return nil }
        }
        var c = DateComponents()
        (c.year, c.month, c.day, c.hour, c.minute, c.second) = (y, m, d, hms[0], hms[1], hms[2])
        var cal = Calendar(identifier: .gregorian)
        cal.timeZone = TimeZone(identifier: "UTC")!
        guard let date = cal.date(from: c), cal.component(.day, from: date) == d else { return nil }
        return Int64(date.timeIntervalSince1970)
    }

    /// The cutoff as `ReflogExpiry` takes it (nil keeps every entry).
    public var cutoff: Int64? {
        switch self {
        case .never: return nil
        case .all: return Int64.max
        case let .before(t): return t
        }
    }

    /// `never`, `all`, or the ISO 8601 UTC date of the cutoff.
    public var description: String {
        switch self {
        case .never: return "never"
        case .all: return "all"
        case let .before(t): return isoDate(t)
        }
    }
}

/// A reflog entry `reflog expire` dropped (or, with `--dry-run`, would drop).
public struct ReflogDrop: Encodable, Sendable {
    /// The log: "HEAD" or a branch name.
    public var ref: String
    public var commit: String
    public var previous: String?
    /// ISO 8601, UTC.
    public var date: String
    public var message: String
}

/// What `reflog expire` did.
public struct ReflogExpireResult: Encodable, Sendable {
    public var dryRun: Bool
    /// The cutoffs applied: `never`, `all` or an ISO date.
    public var expire: String
    public var expireUnreachable: String
    /// The dropped entries, oldest first.
    public var dropped: [ReflogDrop]
}

extension Repository {
    /// git's defaults for `gc.reflogExpire` and `gc.reflogExpireUnreachable`.
    public static let defaultReflogExpire = "90.days.ago"
    public static let defaultReflogExpireUnreachable = "30.days.ago"

    /// The cutoffs `gc` and `reflog expire` apply: `expire` / `expireUnreachable` when given, else
    /// the config's `gc.reflogExpire` / `gc.reflogExpireUnreachable`, else 90 and 30 days.
    /// - Throws: `KitError.usage` naming the option or the config file for a value that is no time.
    func reflogExpiryTimes(expire: String?, expireUnreachable: String?, unreachableNow: Bool = false) throws -> (ExpiryTime, ExpiryTime) {
        let now = Ledger.reflogNow()
        let config = try ConfigFile.load(configPath)
        func time(_ given: String?, option: String, key: String, fallback: String) throws -> ExpiryTime {
            if let given {
                guard let t = ExpiryTime(given, now: now) else {
                    throw KitError.usage("\(option): '\(given)' is not a time (now, never, 90.days.ago, 2026-01-31, @UNIX)")
                }
                return t
            }
            if let value = config.get(key) {
                guard let t = ExpiryTime(value, now: now) else {
                    throw KitError.usage("'\(config.path)': '\(key)' must be a time (now, never, 90.days.ago, 2026-01-31, @UNIX), got '\(value)'")
                }
                return t
            }
            return ExpiryTime(fallback, now: now)!
        }
        return (try time(expire, option: "--expire", key: "gc.reflogExpire", fallback: Self.defaultReflogExpire),
                unreachableNow ? .all : try time(expireUnreachable, option: "--expire-unreachable", key: "gc.reflogExpireUnreachable",
                         fallback: Self.defaultReflogExpireUnreachable))
    }

    /// `wledger reflog expire [--expire=T] [--expire-unreachable=T] (--all | REF…) [--dry-run]`:
    /// drops the entries of HEAD's and the branches' logs (all of them, or `refs`) older than
    /// `expire`, and those older than `expireUnreachable` whose commit no branch, tag, HEAD, stash
    /// entry or bisect session reaches (defaults: the config's `gc.reflogExpire*`, else 90 and 30
    /// days, as git); an entry that stays but is older than `expireUnreachable` forgets its
    /// previous commit when that one is unreachable so. The commits stay until `gc`; the stash's
    /// entries are never expired (`stash drop`/`clear`).
    public func expireReflog(refs: [String]?, expire: String? = nil, expireUnreachable: String? = nil,
                             dryRun: Bool = false) throws -> ReflogExpireResult {
        let (all, unreachable) = try reflogExpiryTimes(expire: expire, expireUnreachable: expireUnreachable)
        let resolver = RevisionResolver(ledger: ledger)
        let names = try refs.map { try $0.map { ref in
            let full = try resolver.reflogName(ref)
            guard full != Ledger.stashLog else {
                throw KitError.usage("'\(ref)': the stash's entries are not expired; 'wledger stash drop' or 'stash clear' removes them")
            }
            return full
        } }
        let dropped = try ledger.expireReflog(ReflogExpiry(before: all.cutoff, unreachableBefore: unreachable.cutoff, refs: names),
                                              dryRun: dryRun)
        return ReflogExpireResult(dryRun: dryRun, expire: all.description, expireUnreachable: unreachable.description,
                                  dropped: dropped.map {
            ReflogDrop(ref: Self.logName($0.ref), commit: $0.new,
                       previous: $0.old, date: isoDate($0.time), message: $0.message)
        })
    }
}
