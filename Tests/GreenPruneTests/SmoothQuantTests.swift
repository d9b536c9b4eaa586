import Foundation
import Testing
import GreenPrune

/// SmoothQuant's factors against the paper's formula, and the folding against the float model it
/// must leave unchanged: norm ÷ s with columns × s, and up's rows ÷ s with down's columns × s.
@Suite struct SmoothQuantTests {
    @Test func factorsFollowTheFormula() {
        // max|X| = [4, 1, 0], max|W| per column = [1, 4, 2] (over both matrices), α = 0.5:
        // s = √4/√1, √1/√4, √1e-5/√2 (the zero activation is floored at 1e-5).
        let w1: [Float] = [1, -4, 0, 0.5, 2, -2], w2: [Float] = [-0.25, 1, 1]
        let s = SmoothQuant.factors(activationMax: [4, 1, 0], weights: [(w1, 2), (w2, 1)], cols: 3, alpha: 0.5)
        #expect(abs(s[0] - 2) < 1e-6 && abs(s[1] - 0.5) < 1e-6)
        #expect(abs(Double(s[2]) - (1e-5).squareRoot() / 2.0.squareRoot()) < 1e-9)
        // α near 1 puts the whole range in the weights: s ≈ max|X|.
        let t = SmoothQuant.factors(activationMax: [8, 3, 1], weights: [(w1, 2)], cols: 3, alpha: 0.999)
        #expect(abs(t[0] - 8) < 0.02 && abs(t[1] - 3) < 0.01)
    }

    @Test func foldingLeavesTheFloatFunctionUnchanged() {
        let m = 5, c = 12, f = 20
        let x = randomMatrix(m, c, seed: 1), norm = randomMatrix(1, c, seed: 2).map { 1 + abs($0) }
        let q = randomMatrix(f, c, seed: 3), gate = randomMatrix(f, c, seed: 4)
        var up = randomMatrix(f, c, seed: 5), down = randomMatrix(c, f, seed: 6)
        let xn = (0 ..< m * c).map { x[$0] * norm[$0 % c] }
        let actMax = (0 ..< c).map { j in (0 ..< m).map { abs(xn[$0 * c + j]) }.max()! }
        func mlp(_ xs: [Float], _ g: [Float], _ u: [Float], _ d: [Float]) -> [Double] {
            let gv = referenceMatmul(xs, g, m: m, n: f, k: c), uv = referenceMatmul(xs, u, m: m, n: f, k: c)
            let h = (0 ..< m * f).map { Float(gv[$0] / (1 + exp(-gv[$0])) * uv[$0]) }
            return referenceMatmul(h, d, m: m, n: c, k: f)
        }
        let before = referenceMatmul(xn, q, m: m, n: f, k: c), mlpBefore = mlp(xn, gate, up, down)
        // q (and gate/up) read the norm's output: norm ÷ s, columns × s.
        let s = SmoothQuant.factors(activationMax: actMax, weights: [(q, f), (gate, f), (up, f)], cols: c, alpha: 0.5)
        var q2 = q, gate2 = gate
        SmoothQuant.scaleColumns(&q2, rows: f, cols: c, by: s)
        SmoothQuant.scaleColumns(&gate2, rows: f, cols: c, by: s)
        SmoothQuant.scaleColumns(&up, rows: f, cols: c, by: s)
        let xn2 = (0 ..< m * c).map { x[$0] * (norm[$0 % c] / s[$0 % c]) }
        // down reads silu(gate)·up: up's rows ÷ s', down's columns × s'.
        let s2 = (0 ..< f).map { Float(1 + $0 % 5) * 0.7 }
        SmoothQuant.divideRows(&up, rows: f, cols: c, by: s2)
        SmoothQuant.scaleColumns(&down, rows: c, cols: f, by: s2)
        let after = referenceMatmul(xn2, q2, m: m, n: f, k: c), mlpAfter = mlp(xn2, gate2, up, down)
        for i in before.indices { #expect(abs(after[i] - before[i]) <= 1e-5 * max(1, abs(before[i]))) }
        for i in mlpBefore.indices { #expect(abs(mlpAfter[i] - mlpBefore[i]) <= 1e-4 * max(1, abs(mlpBefore[i]))) }
        #expect(s.contains { abs($0 - 1) > 0.1 })  // the factors did move something
    }
}
