import Foundation

extension ConfigJSON {
    /// Writes the rotary settings in both layouts, so transformers 4.x and 5.x read the same
    /// model from a config.json GreenPrune writes: 5.x's `rope_parameters` (type and theta in one
    /// object) and 4.x's top-level `rope_theta` with `rope_scaling` (absent for the default type).
    /// 4.x ignores `rope_parameters` and falls back to θ = 10000 without `rope_theta`; 5.x takes
    /// `rope_scaling` over `rope_parameters` when both are set, so the two must say the same.
    /// A config without rotary settings (BERT) is left as it is.
    public mutating func writeBothRopeLayouts() throws {
        let m = model
        guard m.ropeParameters != nil || m.ropeTheta != nil || m.ropeScaling != nil else { return }
        // The same precedence as `RopeConfig`: rope_parameters, then the 4.x fields.
        var p = m.ropeParameters ?? m.ropeScaling ?? RopeParameters()
        p.ropeType = p.ropeType ?? p.type ?? "default"
        p.type = nil
        p.ropeTheta = m.ropeParameters?.ropeTheta ?? m.ropeTheta ?? 10000
        var scaling = p
        scaling.ropeTheta = nil
        let theta = p.ropeTheta
        // Members already right are left as written (a float theta stays a float).
        try update {
            if m.ropeParameters?.ropeTheta == nil || m.ropeParameters?.ropeType == nil { $0.ropeParameters = p }
            if m.ropeTheta != theta { $0.ropeTheta = theta }
            if p.ropeType == "default" { $0.ropeScaling = nil } else if m.ropeScaling != scaling { $0.ropeScaling = scaling }
        }
    }
}
