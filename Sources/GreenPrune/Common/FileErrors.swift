import Foundation

/// Foundation's file errors as GreenPrune's one-line `file: problem`.
///
/// Foundation reports a failed file operation as an `NSCocoaErrorDomain` error whose text is a
/// sentence or, printed as it is, `Error Domain=NSCocoaErrorDomain Code=513 "…"`. The file it
/// concerns and the system's reason are in its user info; these helpers take them out.
public enum FileErrors {
    /// What went wrong, in a few words ("permission denied", "no space left on device").
    public static func problem(_ error: Error) -> String {
        if let p = error as? POSIXError { return posixMessage(p.code.rawValue) }
        let ns = error as NSError
        // The system's reason: a POSIXError on Linux, an NSError in the POSIX domain elsewhere.
        if let u = ns.userInfo[NSUnderlyingErrorKey] as? POSIXError { return posixMessage(u.code.rawValue) }
        if let u = ns.userInfo[NSUnderlyingErrorKey] as? NSError, u.domain == NSPOSIXErrorDomain {
            return posixMessage(Int32(u.code))
        }
        if ns.domain == NSPOSIXErrorDomain { return posixMessage(Int32(ns.code)) }
        if ns.domain == NSCocoaErrorDomain {
            switch ns.code {
            case CocoaError.fileNoSuchFile.rawValue, CocoaError.fileReadNoSuchFile.rawValue: return posixMessage(ENOENT)
            case CocoaError.fileReadNoPermission.rawValue, CocoaError.fileWriteNoPermission.rawValue: return posixMessage(EACCES)
            case CocoaError.fileWriteFileExists.rawValue: return posixMessage(EEXIST)
            case CocoaError.fileWriteOutOfSpace.rawValue: return posixMessage(ENOSPC)
            case CocoaError.fileWriteVolumeReadOnly.rawValue: return posixMessage(EROFS)
            case CocoaError.fileReadCorruptFile.rawValue: return "cannot be read (corrupt or not in the expected format)"
            case CocoaError.fileReadInapplicableStringEncoding.rawValue: return "is not text in the expected encoding"
            case CocoaError.fileReadUnknown.rawValue: return "cannot be read"
            case CocoaError.fileWriteUnknown.rawValue: return "cannot be written"
            default: break
            }
        }
        return ConfigNode.oneLine(error.localizedDescription)
    }

    /// The file a Foundation error is about, when it says; a writer's hidden temporary sibling
    /// (`AtomicFile.temporarySibling`) is named by the file it stands for.
    public static func path(_ error: Error) -> String? {
        let info = (error as NSError).userInfo
        guard let p = info[NSFilePathErrorKey] as? String ?? (info[NSURLErrorKey] as? URL)?.path else { return nil }
        let url = URL(fileURLWithPath: p)
        guard let target = AtomicFile.target(ofTemporary: url.lastPathComponent) else { return p }
        return url.deletingLastPathComponent().appendingPathComponent(target).path
    }

    /// `error` as an `InputError` naming its file when it is a Foundation or POSIX file error;
    /// any other error is returned unchanged.
    public static func oneLine(_ error: Error) -> Error {
        if error is InputError { return error }
        let ns = error as NSError
        guard ns.domain == NSCocoaErrorDomain || ns.domain == NSPOSIXErrorDomain else { return error }
        return InputError(path(error) ?? "file", problem(error))
    }

    static func posixMessage(_ code: Int32) -> String {
        String(cString: strerror(code)).lowercased()
    }
}
