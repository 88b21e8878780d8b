//! Text tokenizers, built from the checkpoint's files exactly as transformers' fast tokenizers are.
//!
//! * `tokenizer.json` when present (the file the reference tokenizer itself runs).
//! * CLIP without it: `vocab.json` + `merges.txt` → NFC, collapse whitespace, lowercase, CLIP's
//!   split regex, byte-level BPE with the `</w>` end-of-word suffix, `<|startoftext|> … <|endoftext|>`.
//! * Chinese-CLIP without it: `vocab.txt` → BERT normaliser (clean text, spaces around CJK,
//!   lowercase), BERT pre-tokenizer, WordPiece (`##`), `[CLS] … [SEP]`.
//!
//! Texts longer than the model's context are truncated keeping the special tokens.

use crate::config::Family;
use crate::Error;
use std::path::Path;
use tokenizers::models::bpe::BPE;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::{BertNormalizer, Lowercase, Replace, Sequence as NormSeq, NFC};
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence as PreSeq;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::processors::roberta::RobertaProcessing;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{SplitDelimiterBehavior, Tokenizer, TruncationParams};

const CLIP_SPLIT: &str = r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+";

/// A tokenizer with the model's context length and padding id.
pub struct TextTokenizer {
    inner: Tokenizer,
    pad_id: u32,
}

fn tok_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Checkpoint {
        path: path.to_path_buf(),
        msg: format!("tokenizer: {e}"),
    }
}

impl TextTokenizer {
    /// Loads the tokenizer of the checkpoint in `dir`.
    pub fn load(dir: &Path, family: Family, context: usize) -> Result<TextTokenizer, Error> {
        let json = dir.join("tokenizer.json");
        let mut inner = if json.is_file() {
            Tokenizer::from_file(&json).map_err(|e| tok_err(&json, e))?
        } else {
            match family {
                Family::Clip => clip_from_vocab(dir)?,
                Family::ChineseClip => bert_from_vocab(dir)?,
            }
        };
        inner
            .with_truncation(Some(TruncationParams {
                max_length: context,
                ..Default::default()
            }))
            .map_err(|e| tok_err(dir, e))?;
        inner.with_padding(None);
        let pad = match family {
            Family::Clip => "<|endoftext|>",
            Family::ChineseClip => "[PAD]",
        };
        let pad_id = inner
            .token_to_id(pad)
            .ok_or_else(|| tok_err(dir, format!("vocabulary has no {pad} token")))?;
        Ok(TextTokenizer { inner, pad_id })
    }

    /// Token ids of each text, special tokens included, truncated to the context length.
    pub fn encode(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>, Error> {
        texts
            .iter()
            .map(|t| {
                self.inner
                    .encode(*t, true)
                    .map(|e| e.get_ids().to_vec())
                    .map_err(|e| Error::Input(format!("cannot tokenize {t:?}: {e}")))
            })
            .collect()
    }

    /// The id used to pad batches.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// The id of `token`, if the vocabulary has it.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The share of a text's tokens that the vocabulary does not know (0 for byte-level BPE).
    pub fn unknown_share(&self, text: &str) -> f32 {
        let Some(unk) = self.inner.token_to_id("[UNK]") else {
            return 0.0;
        };
        let Ok(e) = self.inner.encode(text, false) else {
            return 0.0;
        };
        let ids = e.get_ids();
        if ids.is_empty() {
            return 0.0;
        }
        ids.iter().filter(|&&i| i == unk).count() as f32 / ids.len() as f32
    }
}

fn clip_from_vocab(dir: &Path) -> Result<Tokenizer, Error> {
    let (vocab, merges) = (dir.join("vocab.json"), dir.join("merges.txt"));
    for p in [&vocab, &merges] {
        if !p.is_file() {
            return Err(tok_err(dir, format!("no tokenizer.json and no {}", p.display())));
        }
    }
    let bpe = BPE::from_file(&vocab.to_string_lossy(), &merges.to_string_lossy())
        .unk_token("<|endoftext|>".into())
        .end_of_word_suffix("</w>".into())
        .continuing_subword_prefix(String::new())
        .build()
        .map_err(|e| tok_err(&vocab, e))?;
    let mut tok = Tokenizer::new(bpe);
    let ws = Replace::new(
        tokenizers::normalizers::replace::ReplacePattern::Regex(r"\s+".into()),
        " ",
    )
    .map_err(|e| tok_err(dir, e))?;
    tok.with_normalizer(Some(NormSeq::new(vec![NFC.into(), ws.into(), Lowercase.into()])))
        .map_err(|e| tok_err(dir, e))?;
    let split = Split::new(
        SplitPattern::Regex(CLIP_SPLIT.into()),
        SplitDelimiterBehavior::Removed,
        true,
    )
    .map_err(|e| tok_err(dir, e))?;
    tok.with_pre_tokenizer(Some(PreSeq::new(vec![
        split.into(),
        ByteLevel::new(false, true, true).into(),
    ])));
    let id = |t: &str| {
        tok.token_to_id(t)
            .ok_or_else(|| tok_err(&vocab, format!("vocabulary has no {t}")))
    };
    let (bos, eos) = (id("<|startoftext|>")?, id("<|endoftext|>")?);
    tok.with_post_processor(Some(
        RobertaProcessing::new(("<|endoftext|>".into(), eos), ("<|startoftext|>".into(), bos))
            .trim_offsets(false)
            .add_prefix_space(false),
    ));
    Ok(tok)
}

fn bert_from_vocab(dir: &Path) -> Result<Tokenizer, Error> {
    let vocab = dir.join("vocab.txt");
    if !vocab.is_file() {
        return Err(tok_err(dir, "no tokenizer.json and no vocab.txt"));
    }
    let wp = WordPiece::from_file(&vocab.to_string_lossy())
        .unk_token("[UNK]".into())
        .continuing_subword_prefix("##".into())
        .max_input_chars_per_word(100)
        .build()
        .map_err(|e| tok_err(&vocab, e))?;
    let mut tok = Tokenizer::new(wp);
    tok.with_normalizer(Some(BertNormalizer::new(true, true, None, true)))
        .map_err(|e| tok_err(dir, e))?;
    tok.with_pre_tokenizer(Some(BertPreTokenizer));
    let id = |t: &str| {
        tok.token_to_id(t)
            .ok_or_else(|| tok_err(&vocab, format!("vocabulary has no {t}")))
    };
    let (cls, sep) = (id("[CLS]")?, id("[SEP]")?);
    let post = TemplateProcessing::builder()
        .try_single("[CLS] $A [SEP]")
        .map_err(|e| tok_err(dir, e))?
        .special_tokens(vec![("[CLS]", cls), ("[SEP]", sep)])
        .build()
        .map_err(|e| tok_err(dir, e))?;
    tok.with_post_processor(Some(post));
    Ok(tok)
}
