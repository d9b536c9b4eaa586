import Foundation

extension LlamaWeights {
    /// A layer norm or projection weight of the loaded model by checkpoint name, as float32
    /// values with its (rows, cols) (a norm is (C, 1)): what SmoothQuant and AWQ read before they
    /// rescale it. An error naming `pass` for any other name or a layer without float weights.
    func floatTensor(_ name: String, for pass: String) throws -> (values: [Float], rows: Int, cols: Int) {
        guard let p = LlamaNames.parse(name), let i = p.layer, i < layers.count, p.suffix == "weight" else {
            throw InputError(name, "\(pass) needs this tensor, which the model does not have")
        }
        switch p.role {
        case .norm(let n):
            let s = layers[i].norm(n)
            return (s.array, s.count, 1)
        case .projection(let r):
            let lin = layers[i].linear(r)
            var v = [Float](repeating: 0, count: lin.outFeatures * lin.inFeatures)
            if !v.isEmpty { try v.withUnsafeMutableBufferPointer { try lin.weightRows(0 ..< lin.outFeatures, into: $0.baseAddress!) } }
            return (v, lin.outFeatures, lin.inFeatures)
        default:
            throw InputError(name, "\(pass) needs this tensor, which the model does not have")
        }
    }
}
