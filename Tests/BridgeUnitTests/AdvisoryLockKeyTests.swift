import BridgePostgres
import Testing

/// The advisory-lock keys every worker derives from a name: pinned, because workers of one
/// fleet (and of two bridge versions during a deploy) must agree on them.
struct AdvisoryLockKeyTests {
    @Test(arguments: [
        ("bridge:model:gpt-4.1#0", Int64(9_045_125_894_184_135_764), Int64(2_105_982_483), Int64(3_750_259_796)),
        ("bridge:tool:web_search#3", Int64(4_806_567_489_734_348_355), Int64(1_119_116_202), Int64(1_720_618_563)),
    ])
    func aNamedKeyIsTheFirst63BitsOfItsSHA256(name: String, raw: Int64, classID: Int64, objectID: Int64) {
        let key = AdvisoryLockKey(name: name)
        #expect(key.rawValue == raw)
        // How pg_locks shows the key: classid is the high half, objid the low half.
        #expect(key.classID == classID)
        #expect(key.objectID == objectID)
        #expect(key.classID << 32 | key.objectID == key.rawValue)
    }

    @Test func namedKeysAreNeverNegativeSoPgLocksCanShowThem() {
        for i in 0..<2000 { #expect(AdvisoryLockKey(name: "slot#\(i)").rawValue >= 0) }
    }
}
